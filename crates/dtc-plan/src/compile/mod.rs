//! Resolver and type checker: syntax trees → compiled plans.
