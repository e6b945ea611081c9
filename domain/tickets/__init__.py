"""Complaints, requests and incidents: one stream per ticket, from opening to closing.

A breached SLA is not an event: `sla` computes it from the ticket's stream as time passes.
"""
