"""Local control on the gateway: actuation rules, safety bounds, commands from the cloud, audit."""
