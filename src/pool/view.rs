//! What the stats read of a pool beyond its counters (`stats::PoolView`): its limits, whether
//! it is degraded now, its recent errors and its targets with their health and figures.

use super::Pool;
use crate::stats::{PoolLimits, PoolView, RecentErrors, TargetFigures};

impl PoolView for Pool {
    fn limits(&self) -> PoolLimits {
        PoolLimits {
            max_concurrent: self.limits.max_concurrent,
            max_per_sec: self.limits.max_per_sec,
        }
    }

    fn degraded(&self) -> bool {
        self.is_degraded()
    }

    fn recent_errors(&self) -> &RecentErrors {
        &self.errors
    }

    fn targets(&self) -> Vec<TargetFigures> {
        self.all_targets().iter().map(|t| t.figures()).collect()
    }
}
