"""The operator console: the daemon's own web page, live, and a small REST API.

:mod:`.app` serves it (aiohttp) beside ``/metrics`` and ``/healthz``; :mod:`.views` reads what
the page shows from the running daemon; :mod:`.journal` keeps recent events and the plant's
last hours; :mod:`.modedesk` turns an operator's request into an MQTT mode command;
:mod:`.operators` holds who may send one.  The page (``static/``) needs nothing from the
internet: its one library, uPlot (MIT, ``static/uPlot-LICENSE.txt``), is vendored.
"""
