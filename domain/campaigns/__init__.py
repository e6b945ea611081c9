"""Campaigns: a message (a content reference) sent through one channel to a snapshot of an
audience, with a holdout kept aside to measure uplift; one stream per campaign.

A launch records the snapshot as an event: the members the caller passed, those messaged,
those held out, and those excluded with the reason (no consent to marketing on the channel,
frequency cap, forgotten, merged into another customer, unknown). Membership itself comes
from the caller (a file today, live audiences later), so any source works. A small stream per
channel lists every send on it: the frequency cap reads it, and appending to it serialises
the launches of one channel, so two concurrent launches cannot both pass the cap.
"""
