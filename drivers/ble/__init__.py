"""Bluetooth Low Energy: decoded advertisements (BTHome v2, Ruuvi RAWv2, iBeacon,
Eddystone) and GATT characteristics, behind one ``BleDevice``.

bleak is imported only when a real scanner or GATT client is created, so the
decoders, the device logic and the tests run without a Bluetooth stack.
"""

from ldt.drivers.ble.advertisement import (
    Advertisement,
    AdvertisementLike,
    AdvertisementSource,
    normalize_address,
    uuid16,
)
from ldt.drivers.ble.beacons import decode_eddystone, decode_ibeacon
from ldt.drivers.ble.bthome import BTHOME_UUID, BTHomePacket, decode_bthome
from ldt.drivers.ble.config import (
    BleConnection,
    BleFormat,
    BleMode,
    BlePoint,
    BleProfileSettings,
)
from ldt.drivers.ble.device import BleDevice, BleDeviceHealth
from ldt.drivers.ble.errors import BleDecodeError
from ldt.drivers.ble.gatt import BleakGattClient, GattClient, GattClientFactory
from ldt.drivers.ble.gatt_codec import decode_characteristic, encode_characteristic
from ldt.drivers.ble.ruuvi import RUUVI_COMPANY_ID, decode_ruuvi
from ldt.drivers.ble.scanner import BleakScannerSource

__all__ = [
    "BTHOME_UUID",
    "RUUVI_COMPANY_ID",
    "Advertisement",
    "AdvertisementLike",
    "AdvertisementSource",
    "BTHomePacket",
    "BleConnection",
    "BleDecodeError",
    "BleDevice",
    "BleDeviceHealth",
    "BleFormat",
    "BleMode",
    "BlePoint",
    "BleProfileSettings",
    "BleakGattClient",
    "BleakScannerSource",
    "GattClient",
    "GattClientFactory",
    "decode_bthome",
    "decode_characteristic",
    "decode_eddystone",
    "decode_ibeacon",
    "decode_ruuvi",
    "encode_characteristic",
    "normalize_address",
    "uuid16",
]
