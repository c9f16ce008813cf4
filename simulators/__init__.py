"""Device simulators: real protocol servers serving plausible, seeded, time-varying values."""
