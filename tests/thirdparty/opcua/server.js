// An OPC UA server built on npm's node-opcua, for ldt's driver tests: a device nobody here
// wrote. argv: PORT PKI_FOLDER TRUST, where TRUST is "all" (any client certificate is
// accepted) or "none" (only certificates already in PKI_FOLDER/trusted/certs are).
// Serves None and Basic256Sha256/SignAndEncrypt, anonymous sessions, and under
// /Objects/1:Plant one variable per type the driver must handle (see TYPES below).
// Prints "listening PORT" once ready; writes are kept by the variables.
"use strict";
const path = require("path");
const opcua = require("node-opcua");

const port = Number(process.argv[2]);
const pki = process.argv[3];
const trustAll = process.argv[4] === "all";
const D = opcua.DataType;
const SCALAR = opcua.VariantArrayType.Scalar;
const ARRAY = opcua.VariantArrayType.Array;

// name, DataType, array type, value, writable
const TYPES = [
  ["Temperature", D.Float, SCALAR, 1.35, true],
  ["Pressure", D.Double, SCALAR, 2.5, true],
  ["Count", D.Int32, SCALAR, -7, true],
  ["Level", D.UInt16, SCALAR, 12, true],
  ["Small", D.Byte, SCALAR, 200, true],
  ["Big", D.Int64, SCALAR, [0, 5], false],
  ["Running", D.Boolean, SCALAR, true, true],
  ["Label", D.String, SCALAR, "pump A", true],
  ["Stamp", D.DateTime, SCALAR, new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 678)), false],
  ["Series", D.Double, ARRAY, new Float64Array([1.5, 2.25, 3]), false],
  ["Floats", D.Float, ARRAY, new Float32Array([0.1, 1.35]), false],
  ["Names", D.String, ARRAY, ["a", "b"], false],
  ["Blob", D.ByteString, SCALAR, Buffer.from([1, 2, 3]), false],
];

async function main() {
  const certificateManager = new opcua.OPCUACertificateManager({
    rootFolder: path.join(pki, "server"),
    automaticallyAcceptUnknownCertificate: trustAll,
  });
  const server = new opcua.OPCUAServer({
    port,
    hostname: "127.0.0.1",
    resourcePath: "/ldt",
    serverCertificateManager: certificateManager,
    securityPolicies: [opcua.SecurityPolicy.None, opcua.SecurityPolicy.Basic256Sha256],
    securityModes: [opcua.MessageSecurityMode.None, opcua.MessageSecurityMode.SignAndEncrypt],
    allowAnonymous: true,
  });
  await server.initialize();
  const addressSpace = server.engine.addressSpace;
  const ns = addressSpace.getOwnNamespace();
  const plant = ns.addFolder(addressSpace.rootFolder.objects, { browseName: "Plant" });
  for (const [name, dataType, arrayType, value, writable] of TYPES) {
    const access = writable ? "CurrentRead | CurrentWrite" : "CurrentRead";
    const v = ns.addVariable({
      componentOf: plant,
      browseName: name,
      nodeId: `s=${name}`,
      dataType: opcua.DataType[dataType],
      valueRank: arrayType === ARRAY ? 1 : -1,
      accessLevel: access,
      userAccessLevel: access,
    });
    v.setValueFromSource(new opcua.Variant({ dataType, arrayType, value }));
  }
  // a structure: the engineering range of Pressure (ns=0 Range, i=884)
  const range = addressSpace.constructExtensionObject(opcua.coerceNodeId("i=884"), {
    low: 0,
    high: 10.5,
  });
  const eu = ns.addVariable({
    componentOf: plant, browseName: "PressureRange", nodeId: "s=PressureRange", dataType: "Range",
  });
  eu.setValueFromSource(new opcua.Variant({ dataType: D.ExtensionObject, value: range }));
  await server.start();
  process.stdout.write(`listening ${port}\n`);
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
