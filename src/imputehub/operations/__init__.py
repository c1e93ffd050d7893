"""Running the hub: the settings admins change from the console, maintenance and pauses."""
