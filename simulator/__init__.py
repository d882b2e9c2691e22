"""A local, faithful stand-in for the Azure DPS and IoT Hub service APIs, and for the
Microsoft Entra ID sign-in the portal offers ("Sign in with Microsoft").

`simulator.app.Simulator` is a plain WSGI application (no Django needed) serving several DPS
instances and hubs from one socket, routed by the Host header as Azure routes by host name;
every other host (and ``login.microsoftonline.com``) gets the Entra stand-in
(`simulator.entra`). ``state_file=`` keeps its state across restarts (`simulator.persist`).
"""
