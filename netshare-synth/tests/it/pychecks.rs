//! pandas / pyarrow read the outputs.
