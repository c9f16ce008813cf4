// A Modbus TCP server built on npm's modbus-serial (ServerTCP), for ldt's driver tests.
// Its register map comes from a JSON file (argv[2]):
//   {"unit": 1, "holding": {"32": 100, "33": 7, ...}, "input": {...}, "coils": {"0": true}}
// Any address not in the map answers exception 2 (illegal data address), as real meters
// with gappy maps do; each refusal prints "refused TABLE ADDRESS". Prints "listening PORT"
// once ready; writes are recorded in the map.
"use strict";
const fs = require("fs");
const ModbusRTU = require("modbus-serial");

const map = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const unit = map.unit || 1;
const port = Number(process.argv[3]);

function lookup(table, addr) {
  const t = map[table] || {};
  if (!(String(addr) in t)) {
    process.stdout.write(`refused ${table} ${addr}\n`);
    throw { modbusErrorCode: 0x02, msg: `no ${table} register ${addr}` };
  }
  return t[String(addr)];
}

const vector = {
  getHoldingRegister: (addr) => lookup("holding", addr),
  getInputRegister: (addr) => lookup("input", addr),
  getCoil: (addr) => lookup("coils", addr),
  getDiscreteInput: (addr) => lookup("discrete", addr),
  setRegister: (addr, value) => { lookup("holding", addr); map.holding[String(addr)] = value; },
  setCoil: (addr, value) => { lookup("coils", addr); map.coils[String(addr)] = value; },
};

const server = new ModbusRTU.ServerTCP(vector, { host: "127.0.0.1", port, unitID: unit });
server.on("socketError", () => {});
server.on("initialized", () => process.stdout.write(`listening ${port}\n`));
