"""The product catalogue: goods, services and subscription plans with their list prices, and
the price bands that place a price in a segment (budget, mid, premium) per category."""
