"""The first-run demo: a small beauty catalogue and a show with its line-up, seeded once."""

from __future__ import annotations

from livesale.catalogue import ProductIn, save_products
from livesale.money import Money
from livesale.services import Services
from livesale.shows import SHOWS, LineupItemIn, ShowCreated, ShowIn

_DEMO_KEY = "demo_show"

#: sku, title, price in cents (EUR), stock, description
CATALOGUE: list[tuple[str, str, int, int, str]] = [
    (
        "FDN-SILK-01",
        "Silk Veil Foundation — Porcelain",
        3490,
        40,
        "Weightless, buildable coverage with a satin finish; SPF 15. 30 ml.",
    ),
    (
        "FDN-SILK-03",
        "Silk Veil Foundation — Warm Beige",
        3490,
        40,
        "The same satin veil in a warm mid-tone for golden undertones. 30 ml.",
    ),
    (
        "FDN-GLOW-02",
        "Dew Glow Skin Tint",
        2890,
        30,
        "Sheer tint with hyaluronic acid for a fresh, dewy look. 40 ml.",
    ),
    (
        "LIP-VLV-RED",
        "Velvet Matte Lipstick — Peony Red",
        1990,
        60,
        "Blurring matte colour that stays comfortable for eight hours.",
    ),
    (
        "LIP-VLV-NUD",
        "Velvet Matte Lipstick — Rosewood Nude",
        1990,
        60,
        "An everyday rosy nude in the same cushiony matte formula.",
    ),
    (
        "LIP-GLS-PCH",
        "Jelly Lip Gloss — Peach Soda",
        1490,
        50,
        "Non-sticky high-shine gloss with a hint of peach.",
    ),
    (
        "LIP-TNT-BRY",
        "Water Lip Tint — Berry",
        1290,
        50,
        "Stain-like tint that layers from a flush to full colour.",
    ),
    (
        "SRM-VTC-15",
        "Vitamin C 15% Brightening Serum",
        3990,
        25,
        "Stabilised vitamin C with ferulic acid to even out tone. 30 ml.",
    ),
    (
        "SRM-HYA-02",
        "Hyaluronic Hydration Serum",
        2990,
        35,
        "Five weights of hyaluronic acid for plump, bouncy skin. 30 ml.",
    ),
    (
        "SRM-RET-03",
        "Gentle Retinal Night Serum",
        4590,
        20,
        "Encapsulated retinal for smoother texture, made for beginners. 30 ml.",
    ),
    (
        "CSN-AIR-01",
        "Air Cushion Compact — Light",
        3290,
        30,
        "Refillable cushion with a natural semi-matte finish; SPF 50.",
    ),
    (
        "MSC-LFT-BLK",
        "Lash Lift Mascara — Jet Black",
        1790,
        45,
        "Curls and holds lashes all day; washes off with warm water.",
    ),
]

LINEUP: list[tuple[str, int | None, int | None]] = [
    ("LIP-VLV-RED", 1590, 2),
    ("SRM-VTC-15", 2990, 1),
    ("FDN-SILK-01", None, 2),
    ("LIP-GLS-PCH", 990, 3),
    ("SRM-HYA-02", None, 2),
    ("CSN-AIR-01", 2690, 2),
]


def products() -> list[ProductIn]:
    return [
        ProductIn(
            sku=sku,
            title=title,
            price=Money(amount=price, currency="EUR"),
            description=description,
            image_url=f"/static/img/demo/{sku.lower()}.svg",
            stock=stock,
        )
        for sku, title, price, stock, description in CATALOGUE
    ]


async def seed(services: Services) -> tuple[str, str, bool]:
    """Seed the demo once; return ``(studio_url, watch_url, seeded_now)``.

    On later runs the demo show's host token is rotated so a fresh studio link can be printed
    (only its hash is stored, so the old link cannot be shown again).
    """
    shows = services.get(SHOWS)
    row = await services.db.fetchone("SELECT value FROM settings WHERE key = ?", (_DEMO_KEY,))
    if row is not None:
        show_id = row["value"]
        token = await shows.rotate_host_token(show_id)
        return shows.studio_url(show_id, token), shows.watch_url(show_id), False
    await save_products(services, "demo", products())
    created: ShowCreated = await shows.create(
        ShowIn(title="Friday Glow-Up: lips, serums & base", host_name="Mia"), demo=True
    )
    await shows.put_lineup(
        created.id,
        [
            LineupItemIn(
                sku=sku,
                price=Money(amount=price, currency="EUR") if price is not None else None,
                limit_per_buyer=limit,
            )
            for sku, price, limit in LINEUP
        ],
    )
    async with services.db.transaction() as conn:
        await conn.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?)", (_DEMO_KEY, created.id)
        )
    return created.studio_url, created.watch_url, True
