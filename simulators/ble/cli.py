"""``ldt sim ble``: print the advertisement payloads a simulated sensor would send.

There is no radio to send them to (the simulator feeds the driver in-process);
the printed hex can be compared with a real sensor's capture or replayed with a
tool such as ``btmgmt``/``hcitool`` on a machine that has an adapter.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register"]

FORMATS = ("ruuvi", "bthome", "ibeacon", "eddystone")
"""The advertiser's formats (``advertiser.FORMATS``; a test keeps the two equal)."""


def register(sim_sub: Any) -> None:
    """Add ``ble`` to ``ldt sim`` (without importing the advertiser: it loads cryptography)."""
    ble = sim_sub.add_parser(
        "ble",
        help="print simulated BLE advertisement payloads (no radio is used)",
        description=(
            "Generate the advertisement payloads of a simulated BLE sensor and print them as "
            "hex, one per line: ADDRESS manufacturer 0xCOMPANY HEX, or ADDRESS service UUID HEX. "
            "Nothing is transmitted: this machine's tests feed the BLE driver in-process, and "
            "there is no Bluetooth radio to advertise on."
        ),
    )
    ble.add_argument("--format", choices=FORMATS, default="ruuvi", help="advertisement format")
    ble.add_argument("--seed", type=int, default=0, help="seed of the values (default 0)")
    ble.add_argument("--count", type=int, default=10, help="advertisements to print (default 10)")
    ble.add_argument(
        "--address", default=None, help="sensor MAC (default C0:FF:EE:00:00:<seed %% 256>)"
    )
    ble.add_argument("--bindkey", default=None, help="BTHome AES key, 32 hex digits (encrypts)")
    ble.add_argument("--truncate-rate", type=float, default=0.0, help="fraction cut short")
    ble.add_argument("--garbage-rate", type=float, default=0.0, help="fraction made undecodable")
    ble.set_defaults(func=_run_ble)


def _run_ble(args: argparse.Namespace) -> int:
    from ldt.simulators.ble.advertiser import BleAdvertiser, BleSimulatorError

    address = args.address or f"C0:FF:EE:00:00:{args.seed % 256:02X}"
    if args.count < 0:
        print("ldt sim ble: --count must be >= 0", file=sys.stderr)
        return 2
    try:
        bindkeys = {address: bytes.fromhex(args.bindkey)} if args.bindkey else None
        sim = BleAdvertiser(
            devices=[(address, args.format, args.seed)],
            interval_s=1.0,
            truncate_rate=args.truncate_rate,
            garbage_rate=args.garbage_rate,
            bindkeys=bindkeys,
            fault_seed=args.seed,
        )
        printed = 0
        while printed < args.count:
            for adv in sim.advertisements(address):
                for company, data in adv.manufacturer_data.items():
                    print(f"{adv.address} manufacturer 0x{company:04X} {data.hex().upper()}")
                for uuid, data in adv.service_data.items():
                    print(f"{adv.address} service {uuid} {data.hex().upper()}")
                printed += 1
    except (BleSimulatorError, ValueError) as exc:
        print(f"ldt sim ble: {exc}", file=sys.stderr)
        return 2
    return 0
