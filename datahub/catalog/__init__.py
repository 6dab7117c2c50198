"""What each user may see in Trino (catalogs, schemas, tables, columns, functions), read
as that user through the gateway and cached per user: the data behind SQL completion and
the schema browser."""
