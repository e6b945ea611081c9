"""Satisfaction surveys (NPS 0-10, CSAT 1-5) sent through the questionnaire channel.

One stream per survey: sent once, answered at most once. Answers may arrive late; views place
them at their business time, so a survey stream does not refuse an earlier-dated event.
"""
