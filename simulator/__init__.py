"""Plant simulator: pot-line physics, renewables, storage, captive unit, grid, MQTT bridge."""
