"""Word lists for the synthetic shop: categories with nouns and typical prices, brands, tags, regions."""

from __future__ import annotations

# (category, typical price, nouns used in titles)
CATEGORIES: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("shoes", 80.0, ("running shoe", "sneaker", "boot", "sandal", "loafer")),
    ("clothing", 40.0, ("t-shirt", "hoodie", "jacket", "dress", "jeans")),
    ("electronics", 120.0, ("headphones", "speaker", "charger", "smartwatch", "keyboard")),
    ("home", 35.0, ("lamp", "cushion", "rug", "vase", "wall clock")),
    ("kitchen", 30.0, ("frying pan", "knife set", "kettle", "blender", "mug")),
    ("beauty", 25.0, ("face cream", "lipstick", "shampoo", "perfume", "serum")),
    ("sports", 45.0, ("yoga mat", "dumbbell", "tennis racket", "water bottle", "bike helmet")),
    ("books", 15.0, ("novel", "cookbook", "travel guide", "comic", "biography")),
    ("toys", 25.0, ("puzzle", "building set", "plush bear", "board game", "toy car")),
    ("garden", 30.0, ("watering can", "plant pot", "garden hose", "seed kit", "garden chair")),
    ("grocery", 8.0, ("coffee", "green tea", "olive oil", "chocolate", "granola")),
    ("pets", 20.0, ("dog bed", "cat toy", "leash", "pet bowl", "scratching post")),
    ("office", 12.0, ("notebook", "pen set", "desk lamp", "backpack", "planner")),
    ("jewelry", 90.0, ("necklace", "ring", "bracelet", "earrings", "watch")),
    ("music", 150.0, ("guitar", "ukulele", "vinyl record", "microphone", "drum pad")),
    ("baby", 60.0, ("stroller", "baby blanket", "baby bottle", "baby monitor", "bib")),
)

ADJECTIVES: tuple[str, ...] = (
    "Blue", "Red", "Black", "White", "Green", "Grey", "Pink", "Yellow",
    "Classic", "Compact", "Deluxe", "Organic", "Vintage", "Smart", "Light", "Pro",
)

BRANDS: tuple[str, ...] = (
    "Acme", "Nordic", "Zenith", "Orbit", "Maple", "Vertex", "Lumen", "Cobalt", "Harbor", "Pioneer",
    "Aurora", "Summit", "Willow", "Falcon", "Nimbus", "Ember", "Atlas", "Juniper", "Quartz", "Solace",
    "Tundra", "Velvet", "Breeze", "Copper", "Drift", "Evergreen", "Fjord", "Granite", "Horizon", "Iris",
    "Kestrel", "Lagoon", "Meadow", "Nova", "Onyx", "Prism", "Riverside", "Sierra", "Tidal", "Umber",
)

TAGS: tuple[str, ...] = (
    "sale", "new", "bestseller", "eco", "premium", "limited", "gift", "handmade", "bundle", "clearance",
    "trending", "local", "vegan", "waterproof", "wireless", "kids", "unisex", "travel", "classic", "sport",
)

# (region, share of users)
REGIONS: tuple[tuple[str, float], ...] = (
    ("north", 0.18), ("south", 0.16), ("east", 0.14), ("west", 0.14),
    ("central", 0.12), ("coast", 0.11), ("highlands", 0.08), ("islands", 0.07),
)

# Relative session starts per hour of the day: quiet at night, peaks at lunch and in the evening.
HOUR_TRAFFIC: tuple[float, ...] = (
    0.6, 0.4, 0.3, 0.2, 0.2, 0.3, 0.6, 1.0, 1.3, 1.4, 1.5, 1.6,
    1.9, 1.7, 1.5, 1.5, 1.6, 1.8, 2.1, 2.5, 2.7, 2.6, 2.0, 1.2,
)
