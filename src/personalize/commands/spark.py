"""``personalize spark train`` and ``personalize spark score``: the pipeline on Apache Spark.

Needs the ``spark`` extra and Java 17+; without them each command stops with
one line on stderr (exit 2) before anything is read.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from personalize.commands.common import JsonOpt, emit
from personalize.errors import PersonalizeError

spark_app = typer.Typer(name="spark", help="Train and batch-score on Apache Spark (needs the spark extra and Java 17+).",
                        no_args_is_help=True)

MasterOpt = Annotated[str, typer.Option("--master", help="Spark master: local[2], spark://host:7077, yarn, ...")]
MemoryOpt = Annotated[str, typer.Option("--driver-memory", help="Driver JVM memory (set before Spark starts).")]
PathArg = Annotated[str, typer.Argument(help="Transactions: Parquet file, folder or glob (any path Spark reads).")]
ItemsOpt = Annotated[str | None, typer.Option("--items", help="Item table (Parquet).")]
CustomersOpt = Annotated[str | None, typer.Option("--customers", help="Customer table (Parquet).")]
OffersOpt = Annotated[str | None, typer.Option("--offers", help="Offer catalog (Parquet): with --exposures, the bundle "
                                                                "gets next-best-offers and coupon levels.")]
ExposuresOpt = Annotated[str | None, typer.Option("--exposures", help="Campaign exposures (Parquet).")]
MapOpt = Annotated[list[str] | None, typer.Option("--map", help="Column mapping FIELD=COLUMN for transactions, or "
                                                               "TABLE.FIELD=COLUMN (repeatable).")]
OutputOpt = Annotated[str | None, typer.Option("--output", help="Also write the scored customers and candidates as "
                                                                "Parquet folders here.")]
TimeFormatOpt = Annotated[str | None, typer.Option("--time-format", help="strftime format of timestamp text.")]
ConfOpt = Annotated[list[str] | None, typer.Option("--conf", help="Spark setting KEY=VALUE, set before the session "
                                                                 "starts (repeatable), e.g. spark.executor.memory=8g.")]
PartitionsOpt = Annotated[int | None, typer.Option("--shuffle-partitions", help="spark.sql.shuffle.partitions "
                                                                                "(default 2 x local cores).")]


def _mapping(maps: list[str] | None) -> dict:
    from personalize.data.schema import TABLES

    out: dict[str, dict[str, str]] = {}
    for m in maps or []:
        left, eq, column = m.partition("=")
        if not eq or not column.strip() or not left.strip():
            raise PersonalizeError(f"--map {m!r}: expected FIELD=COLUMN or TABLE.FIELD=COLUMN")
        table, dot, field = left.strip().rpartition(".")
        table = table if dot else "transactions"
        if table not in ("transactions", "items", "customers", "offers", "exposures"):
            raise PersonalizeError(f"--map {m!r}: the Spark path reads transactions, items, customers, offers and "
                                   "exposures")
        if field not in TABLES[table].columns:
            raise PersonalizeError(f"--map {m!r}: {table} has no field {field!r}; fields: "
                                   f"{sorted(TABLES[table].columns)}")
        out.setdefault(table, {})[field] = column.strip()
    return out


def _conf(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq or not key.strip().startswith("spark.") or not value.strip():
            raise PersonalizeError(f"--conf {item!r}: expected spark.KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def _start(master: str, driver_memory: str, partitions: int | None, say, conf: list[str] | None = None):
    from personalize.spark.session import check_spark, spark_session

    check_spark()  # one clear line (exit 2) when Java or pyspark is missing
    settings = _conf(conf)
    say(f"starting Spark ({master}, driver memory {driver_memory})")
    return spark_session(master, driver_memory=driver_memory, shuffle_partitions=partitions, conf=settings)


def _load(spark, path, items, customers, maps, time_format, say, offers=None, exposures=None):
    from personalize.spark.data import SparkDataset

    say(f"reading and cleaning {path}")
    sds = SparkDataset.from_parquet(spark, path, items=items, customers=customers, offers=offers,
                                    exposures=exposures, mapping=_mapping(maps) or None, time_format=time_format)
    r = sds.report
    say(f"{r.kept_rows:,} of {r.input_rows:,} lines kept; dropped {dict(r.dropped)}")
    return sds


def _say(json: bool):
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        if not json:
            typer.echo(f"[{time.perf_counter() - t0:6.1f}s] {msg}", err=True)
    return say, t0


def train(path: PathArg, master: MasterOpt = "local[2]",
          out: Annotated[str, typer.Option("--out", help="Model store to publish to.")] = "models",
          items: ItemsOpt = None, customers: CustomersOpt = None, offers: OffersOpt = None,
          exposures: ExposuresOpt = None, maps: MapOpt = None, output: OutputOpt = None,
          ladder: Annotated[str | None, typer.Option("--ladder", help="Coupon ladder: offer ids, cheapest first "
                                                                       "(default: every untargeted discount offer "
                                                                       "with randomized exposures).")] = None,
          factors: Annotated[int, typer.Option(help="ALS latent factors.")] = 64,
          iterations: Annotated[int, typer.Option(help="ALS iterations.")] = 15,
          candidates: Annotated[int, typer.Option(help="Precomputed candidates per customer.")] = 200,
          churn: Annotated[bool, typer.Option("--churn/--no-churn", help="Train and score the churn model.")] = True,
          churn_horizon_days: Annotated[float, typer.Option("--churn-horizon-days")] = 90.0,
          keep: Annotated[int | None, typer.Option(help="Keep only the newest N versions.")] = None,
          seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
          driver_memory: MemoryOpt = "4g", time_format: TimeFormatOpt = None, shuffle_partitions: PartitionsOpt = None,
          conf: ConfOpt = None, json: JsonOpt = False) -> None:
    """Train every model on Spark and publish a bundle that `personalize serve --models OUT` loads."""
    from personalize.spark.session import check_spark

    check_spark()
    if factors < 1 or candidates < 1 or iterations < 1:
        raise PersonalizeError("--factors, --iterations and --candidates must be positive")
    say, t0 = _say(json)
    spark = _start(master, driver_memory, shuffle_partitions, say, conf)
    from personalize.spark.pipeline import train_bundle
    from personalize.spark.session import JobProgress

    with JobProgress(spark, say, interval=2.0) if not json else _Null():
        sds = _load(spark, path, items, customers, maps, time_format, say, offers=offers, exposures=exposures)
        manifest = train_bundle(sds, store=out, out=output, factors=factors, iterations=iterations,
                                candidates=candidates, churn=churn, churn_horizon_days=churn_horizon_days, seed=seed,
                                keep=keep, progress=say, ladder=ladder, extra_params={"source": {"path": str(path), "master": master}})
    emit(manifest, json, f"published model version {manifest['version']} to {out}/ "
                         f"({time.perf_counter() - t0:.1f} s on {master})")


def score(path: PathArg, master: MasterOpt = "local[2]",
          models: Annotated[str, typer.Option("--models", help="Model store whose CURRENT bundle scores.")] = "models",
          out: Annotated[str | None, typer.Option("--out", help="Store to publish the re-scored bundle to "
                                                                "(default: --models).")] = None,
          items: ItemsOpt = None, customers: CustomersOpt = None, offers: OffersOpt = None,
          exposures: ExposuresOpt = None, maps: MapOpt = None, output: OutputOpt = None,
          candidates: Annotated[int | None, typer.Option(help="Candidates per customer (default: the bundle's).")] = None,
          keep: Annotated[int | None, typer.Option(help="Keep only the newest N versions.")] = None,
          driver_memory: MemoryOpt = "4g", time_format: TimeFormatOpt = None, shuffle_partitions: PartitionsOpt = None,
          conf: ConfOpt = None, json: JsonOpt = False) -> None:
    """Re-score every customer on new data with a published bundle's models; publish the result."""
    from personalize.spark.session import check_spark
    from personalize.store import current_version

    check_spark()
    if current_version(models) is None:
        raise PersonalizeError(f"--models {models}: no bundle published there (run `personalize spark train`)")
    say, t0 = _say(json)
    spark = _start(master, driver_memory, shuffle_partitions, say, conf)
    from personalize.spark.pipeline import score_bundle
    from personalize.spark.session import JobProgress

    with JobProgress(spark, say, interval=2.0) if not json else _Null():
        sds = _load(spark, path, items, customers, maps, time_format, say, offers=offers, exposures=exposures)
        manifest = score_bundle(sds, models=models, store=out, out=output, candidates=candidates, keep=keep,
                                progress=say)
    emit(manifest, json, f"published re-scored version {manifest['version']} to {out or models}/ "
                         f"({time.perf_counter() - t0:.1f} s on {master})")


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


spark_app.command("train")(train)
spark_app.command("score")(score)


def register(app: typer.Typer) -> None:
    app.add_typer(spark_app)
