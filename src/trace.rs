//! The step-by-step account of a one-group pass (`sync --group`, `POST /sync?group=`): what
//! was read, how scope and mapping decided, what differed, what was written and what Q Business
//! answered, in the order it happened.

use std::fmt;
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

/// One step of a [`Trace`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceStep {
    /// Milliseconds since the pass started.
    pub at_ms: u64,
    /// `list`, `scope`, `read`, `mapping`, `diff`, `write`, `status`, `record`, `delete`.
    pub step: &'static str,
    pub detail: String,
}

/// Collects steps while a pass runs; shared by the pass's concurrent tasks.
#[derive(Debug)]
pub struct Tracer {
    started: Instant,
    steps: Mutex<Vec<TraceStep>>,
}

impl Default for Tracer {
    fn default() -> Self {
        Tracer {
            started: Instant::now(),
            steps: Mutex::new(Vec::new()),
        }
    }
}

impl Tracer {
    pub fn step(&self, step: &'static str, detail: impl Into<String>) {
        let at_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut steps = self.steps.lock().unwrap_or_else(|e| e.into_inner());
        steps.push(TraceStep {
            at_ms,
            step,
            detail: detail.into(),
        });
    }

    pub fn finish(&self) -> Trace {
        let steps = self.steps.lock().unwrap_or_else(|e| e.into_inner());
        Trace {
            steps: steps.clone(),
        }
    }
}

/// A finished trace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Trace {
    pub steps: Vec<TraceStep>,
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.steps {
            writeln!(f, "  [{:>6} ms] {:<8} {}", s.at_ms, s.step, s.detail)?;
        }
        Ok(())
    }
}

/// Records a step when a tracer is present (one-group passes only).
pub fn step(tracer: Option<&Tracer>, step: &'static str, detail: impl FnOnce() -> String) {
    if let Some(t) = tracer {
        t.step(step, detail());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_keep_their_order_and_print_aligned() {
        let t = Tracer::default();
        t.step("read", "12 Okta members in 1 page");
        step(Some(&t), "diff", || "+1 -0".to_owned());
        step(None, "never", || {
            unreachable!("not evaluated without a tracer")
        });
        let trace = t.finish();
        let names: Vec<_> = trace.steps.iter().map(|s| s.step).collect();
        assert_eq!(names, ["read", "diff"]);
        assert!(trace.steps[0].at_ms <= trace.steps[1].at_ms);
        let text = trace.to_string();
        assert!(text.contains("ms] read     12 Okta members"), "{text}");
    }
}
