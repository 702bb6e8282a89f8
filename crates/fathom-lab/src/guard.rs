//! `LabGuard`: a lab that takes itself down when it goes out of scope, including when a test panics.

use std::ops::Deref;

use crate::down::down_lab;
use crate::error::Result;
use crate::spec::LabSpec;
use crate::state::LabState;
use crate::up::{Lab, UpOptions};

/// Owns a running lab; dropping it runs `down` (errors are printed to stderr, never panicked on, because a panic
/// during unwinding would abort the test binary and hide the original failure).
///
/// ```no_run
/// # fn main() -> Result<(), fathom_lab::LabError> {
/// let spec = fathom_lab::LabSpec::from_yaml("namespaces: [{name: x, pods: [{name: a}, {name: b}]}]")?;
/// let lab = fathom_lab::LabGuard::up_named(&spec, &fathom_lab::unique_name("mytest"))?;
/// let a = lab.pod("x/a").unwrap();
/// let status = a.command("ping").args(["-c1", &lab.pod("x/b").unwrap().ipv4.to_string()]).status();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LabGuard {
    state: Option<LabState>,
}

impl LabGuard {
    /// Bring up `spec` (named by `spec.name`) and guard it.
    pub fn up(spec: &LabSpec) -> Result<LabGuard> {
        Ok(LabGuard::new(Lab::up(spec)?))
    }

    /// Bring up `spec` under `name` and guard it.
    pub fn up_named(spec: &LabSpec, name: &str) -> Result<LabGuard> {
        let opts = UpOptions {
            name: Some(name.to_string()),
            ..UpOptions::default()
        };
        Ok(LabGuard::new(Lab::up_with(spec, &opts)?))
    }

    /// Guard an existing lab.
    pub fn new(state: LabState) -> LabGuard {
        LabGuard { state: Some(state) }
    }

    pub fn state(&self) -> &LabState {
        // `state` is only None after `down`/`into_inner`, which consume the guard.
        self.state
            .as_ref()
            .expect("LabGuard holds a state until consumed")
    }

    /// Take the lab down now and see the result.
    pub fn down(mut self) -> Result<()> {
        match self.state.take() {
            Some(state) => down_lab(&state),
            None => Ok(()),
        }
    }

    /// Stop guarding: the lab stays up.
    pub fn into_inner(mut self) -> LabState {
        self.state
            .take()
            .expect("LabGuard holds a state until consumed")
    }
}

impl Deref for LabGuard {
    type Target = LabState;
    fn deref(&self) -> &LabState {
        self.state()
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        let Some(state) = self.state.take() else {
            return;
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| down_lab(&state)));
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("fathom-lab: LabGuard: {e}"),
            Err(_) => eprintln!(
                "fathom-lab: LabGuard: taking down lab {:?} panicked",
                state.name
            ),
        }
    }
}
