"""The storage layer: the only code that reads and writes udun's database.

  schema      every table of the head revision as a SQLAlchemy Core Table (one MetaData)
  errors      the one translation of database failures into PkiError
  engine      the engine for UDUN_DATABASE_URL (SQLite pragmas, file modes)
  migrate     the Alembic runner over ca/migrations
  raw         the raw driver path: Core statements compiled once, run on DBAPI cursors
  store       authorities, certificates, status, blocked keys, CRLs (Store)
  counters    shared monotonic counters
  audit       audit log rows: append (Core and raw), entries and checkpoints
  evidence    evidence records and bank challenges (EvidenceStore)
  delegated   the CA's delegated OCSP/TSA keys (DelegatedStore)
"""
