"""Modbus TCP (and later RTU): a pure register codec, a read planner and an async adapter."""
