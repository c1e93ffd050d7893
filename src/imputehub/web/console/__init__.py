"""The admin console (/console): services, panels, users, the queue, stats, the audit log
and the hub's settings. Every page and form here is for admins only
(session_auth.AdminSignedIn); each calls the same application functions as the REST API.
"""
