//! rill-state: store implementations (RocksDB, in-memory) and their layers. Empty until the streams runtime issue.
