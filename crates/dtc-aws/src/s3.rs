//! S3: event inputs and the Parquet destination.
