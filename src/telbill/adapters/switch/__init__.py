"""Adapters for SIP switches: telbill's Kamailio configuration (`telbill.cfg`, filled in by
`kamailio_config`) and the JSON-RPC client that ends a running call (`kamailio`)."""
