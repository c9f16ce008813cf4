"""Walking a server's address space: what ``ldt opcua browse`` prints to help write a profile."""

from __future__ import annotations

import json
from dataclasses import dataclass

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.ua.attribute_ids import AttributeIds

from ldt.drivers.opcua.codec import from_variant, status_name
from ldt.reading import Structured

__all__ = ["VariableInfo", "browse_variables"]


@dataclass(frozen=True, slots=True)
class VariableInfo:
    """One variable found under Objects."""

    browse_path: str  # /Objects/2:PumpingStation/2:Pump1/2:Speed
    node_id: str  # ns=2;s=Pump1.Speed
    data_type: str  # Double
    access: str  # "r" or "rw"
    value: str  # the current value, or the Bad status name


async def _describe(client: Client, node: Node, path: str) -> VariableInfo:
    read = client.uaclient.read_attributes
    (value_dv,) = await read([node.nodeid], AttributeIds.Value)
    (dtype_dv,) = await read([node.nodeid], AttributeIds.DataType)
    (access_dv,) = await read([node.nodeid], AttributeIds.UserAccessLevel)
    dtype = dtype_dv.Value.Value if dtype_dv.Value is not None else None
    dtype_name = "?"
    if isinstance(dtype, ua.NodeId):
        if (
            dtype.NamespaceIndex == 0
            and isinstance(dtype.Identifier, int)
            and dtype.Identifier <= 25
        ):
            dtype_name = ua.VariantType(dtype.Identifier).name
        else:
            dtype_name = dtype.to_string()
    level = access_dv.Value.Value if access_dv.Value is not None else 0
    access = "rw" if (level or 0) & ua.AccessLevel.CurrentWrite.mask else "r"
    status = value_dv.StatusCode or ua.StatusCode()
    if status.is_bad():
        text = status_name(status)
    else:
        variant = value_dv.Value
        try:
            value = from_variant(
                variant.Value if variant else None, variant.VariantType if variant else None
            )
        except ValueError as exc:
            text = f"({exc})"
        else:
            text = json.dumps(value.data) if isinstance(value, Structured) else repr(value)
    return VariableInfo(path, node.nodeid.to_string(), dtype_name, access, text)


async def browse_variables(client: Client, *, depth: int = 6) -> list[VariableInfo]:
    """Every variable under Objects down to ``depth`` levels.

    Namespace 0's Server object (thousands of diagnostics nodes) is skipped.
    """
    out: list[VariableInfo] = []
    objects = client.nodes.objects

    async def walk(node: Node, path: str, level: int) -> None:
        if level > depth:
            return
        for ref in await node.get_children_descriptions():
            child = client.get_node(ref.NodeId.to_string())
            bname = ref.BrowseName
            child_path = f"{path}/{bname.NamespaceIndex}:{bname.Name}"
            if ref.NodeId.NamespaceIndex == 0 and level == 1:
                continue  # the standard Server object: thousands of nodes nobody maps
            if ref.NodeClass == ua.NodeClass.Variable:
                out.append(await _describe(client, child, child_path))
            if ref.NodeClass in (ua.NodeClass.Object, ua.NodeClass.Variable):
                await walk(child, child_path, level + 1)

    await walk(objects, "/Objects", 1)
    return out
