"""The distributed path: CNN features on Spark, then MLlib logistic regression, random forest, decision tree.

    python -m training.spark.featurize --images DIR|s3a://... --manifest runs/manifest.csv --out runs/features
    python -m training.spark.classify --features runs/features --task multiclass --out runs/spark
    python -m training.spark.score --model runs/spark/best_pipeline --images DIR --out runs/scores

Each also runs under ``spark-submit`` (EMR, EMR Serverless, Databricks): see docs/spark.md.
"""
