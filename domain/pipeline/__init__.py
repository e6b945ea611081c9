"""The sales pipeline: named pipelines of stages with win probabilities, and deals moving
through them from opening to won (becoming an order) or lost. One stream per pipeline and per
deal; a deal is a lifecycle stream, so its business time never goes back."""
