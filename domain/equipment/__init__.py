"""Equipment a customer owns: registration, usage readings, maintenance, breakdowns, retirement.

One stream per piece of equipment. It is a lifecycle stream, except that usage readings may
arrive late: a late reading is placed at its business time and never moves the current one back.
Wear, maintenance due dates and warranty windows are computed from the state, not stored.
"""
