"""``smelter-ems demo``: the product in one command (docs/demo.md).

A broker (Mosquitto, or the embedded amqtt), the simulator and the real daemon as its own
process, on an accelerated plant clock; then ``kpis.json`` against the flat baseline, the
figures as PNG and a self-contained ``report.html``.

    session.run_demo(options, progress) -> DemoRun       the closed loop over MQTT
    kpis.build_kpis(...) -> dict                           kpis.json
    figures.draw_all(inputs, by_hour, out) -> {name: (title, png)}
    page.write_page(path, kpis, figures, cycle_min)        report.html
"""
