"""What the hub's outgoing requests may reach: the public-address rule (`addresses.py`)."""
