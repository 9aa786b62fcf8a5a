"""Plant simulator: pot-line physics, renewables, storage, captive unit, grid, and its MQTT bridge."""
