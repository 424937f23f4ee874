"""The Faust service: one app, topics declared once, thin agents over the ``socrec_online`` library.

Only this package imports faust and aiokafka; ``socrec_online`` never imports it.
"""
