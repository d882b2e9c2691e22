"""A local, faithful stand-in for the Azure DPS and IoT Hub service APIs.

`simulator.app.Simulator` is a plain WSGI application (no Django needed) serving several DPS
instances and hubs from one socket, routed by the Host header as Azure routes by host name.
"""
