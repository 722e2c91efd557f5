"""sonoedge.devices: device profiles (one TOML per device kind) and detection of the current device."""
