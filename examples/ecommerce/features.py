"""The e-commerce demo feature repo: purchases from Kafka, customers from PostgreSQL."""

from datetime import UTC, datetime

from jstore.model import (
    Aggregation,
    Entity,
    EventSource,
    FeatureService,
    FieldSpec,
    SqlFeatureView,
    TableSource,
    WindowedFeatureView,
)

START = datetime(2024, 5, 1, tzinfo=UTC)
WINDOWS = ["1h", "1d", "7d", "30d"]

user = Entity(name="user", join_keys=["user_id"], description="A customer of the shop.")
merchant = Entity(name="merchant", join_keys=["merchant_id"], description="A seller on the shop.")

purchases = EventSource(
    name="purchases",
    topic="purchases",
    timestamp_field="ts",
    schema=[
        FieldSpec(name="user_id", dtype="string"),
        FieldSpec(name="merchant_id", dtype="string"),
        FieldSpec(name="amount", dtype="float64"),
        FieldSpec(name="category", dtype="string"),
        FieldSpec(name="ts", dtype="timestamp"),
    ],
    description="One event per completed purchase.",
    owner="payments",
)

customers = TableSource(
    name="customers",
    table="public.customers",
    timestamp_column="updated_at",
    schema=[
        FieldSpec(name="user_id", dtype="string"),
        FieldSpec(name="tier", dtype="string"),
        FieldSpec(name="country", dtype="string"),
        FieldSpec(name="updated_at", dtype="timestamp"),
    ],
    description="The customers table of the shop's database; each update is an event.",
    owner="crm",
)

user_purchases = WindowedFeatureView(
    name="user_purchases",
    entities=["user"],
    source="purchases",
    step="1h",
    aggregations=[
        Aggregation(function="count", windows=WINDOWS),
        Aggregation(function="sum", column="amount", windows=WINDOWS),
        Aggregation(function="avg", column="amount", windows=WINDOWS),
        Aggregation(function="max", column="amount", windows=WINDOWS),
    ],
    ttl="2h",
    owner="fraud-team",
    tags={"team": "fraud", "domain": "payments"},
    description="How much and how often a user buys.",
    start=START,
)

merchant_sales = WindowedFeatureView(
    name="merchant_sales",
    entities=["merchant"],
    source="purchases",
    step="1d",
    aggregations=[
        Aggregation(function="count", windows=["1d", "7d"]),
        Aggregation(function="sum", column="amount", windows=["1d", "7d"]),
    ],
    ttl="2d",
    owner="marketplace-team",
    tags={"team": "marketplace"},
    description="Daily and weekly sales of a merchant.",
    start=START,
)

user_categories = WindowedFeatureView(
    name="user_categories",
    entities=["user"],
    source="purchases",
    step="1h",
    aggregations=[
        Aggregation(function="count_distinct", column="category", windows=["7d", "30d"]),
    ],
    ttl="2h",
    owner="fraud-team",
    tags={"team": "fraud"},
    description="How many different categories a user bought from (approximate).",
    start=START,
)

user_big_spends = SqlFeatureView(
    name="user_big_spends",
    entities=["user"],
    source="purchases",
    step="1h",
    window="1d",
    query="""
        SELECT user_id,
               COUNT_IF(amount >= 100) AS big_purchases_1d,
               MAX(amount) - MIN(amount) AS amount_range_1d
        FROM input_data
        GROUP BY user_id
    """,
    features=[
        FieldSpec(name="big_purchases_1d", dtype="int64"),
        FieldSpec(name="amount_range_1d", dtype="float64"),
    ],
    ttl="2h",
    owner="fraud-team",
    tags={"team": "fraud"},
    description="Purchases of 100 or more and the spread of amounts in the last day.",
    start=START,
)

fraud_v1 = FeatureService(
    name="fraud_v1",
    features=[
        "user_purchases:count_1h",
        "user_purchases:amount_sum_1d",
        "user_purchases:amount_avg_7d",
        "user_purchases:amount_max_30d",
        "user_categories:category_count_distinct_7d",
        "merchant_sales:amount_sum_7d",
        "user_big_spends:big_purchases_1d",
    ],
    description="Features of the card-fraud model, version 1.",
    owner="fraud-team",
)
