"""Host names the simulator answers for (Azure routes by host name, so do we)."""

DPS_HOST = "demo-dps.azure-devices-provisioning.net"
HUB1_HOST = "demo-hub-1.azure-devices.net"
HUB2_HOST = "demo-hub-2.azure-devices.net"
# A hub some registrations point to but that the written targets file does not list.
OTHER_HUB_HOST = "other-hub.azure-devices.net"

DPS_HOSTS = (DPS_HOST,)
HUB_HOSTS = (HUB1_HOST, HUB2_HOST, OTHER_HUB_HOST)
# Hubs a device provisioned through the demo DPS is spread across.
LINKED_HUBS = (HUB1_HOST, HUB2_HOST)
ALL_HOSTS = DPS_HOSTS + HUB_HOSTS
# The Entra ID sign-in stand-in answers here and on every host not listed above.
ENTRA_HOST = "login.microsoftonline.com"
