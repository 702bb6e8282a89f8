//! A do-nothing TC program (`probe_tc_noop` in probe.bpf.c) run with BPF_PROG_TEST_RUN: the
//! fixed cost of the test harness itself (context setup, packet copy, loop), which benchmarks
//! subtract from a real program's figure measured with the same packet in the same run.

use std::mem::MaybeUninit;
use std::time::Duration;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};

use crate::error::BpfError;
use crate::skel::probe::{ProbeSkel, ProbeSkelBuilder};

pub struct TcBaseline {
    skel: ProbeSkel<'static>,
}

impl TcBaseline {
    pub fn load() -> Result<Self, BpfError> {
        let storage: &'static mut MaybeUninit<libbpf_rs::OpenObject> =
            Box::leak(Box::new(MaybeUninit::uninit()));
        let err = |source| BpfError::Load {
            object: "probe",
            log: String::new(),
            source,
        };
        let mut open = ProbeSkelBuilder::default().open(storage).map_err(err)?;
        for mut p in open.open_object_mut().progs_mut() {
            let name = p.name().to_string_lossy().into_owned();
            p.set_autoload(name == "probe_tc_noop");
        }
        Ok(Self {
            skel: open.load().map_err(err)?,
        })
    }

    /// Average time of one run over `repeat` runs, and the return value (0, TC_ACT_OK).
    pub fn test_run(&self, packet: &[u8], repeat: u32) -> Result<(i32, Duration), BpfError> {
        let input = libbpf_rs::ProgramInput {
            data_in: Some(packet),
            repeat,
            ..Default::default()
        };
        let out = self
            .skel
            .progs
            .probe_tc_noop
            .test_run(input)
            .map_err(|e| BpfError::Other(format!("BPF_PROG_TEST_RUN: {e}")))?;
        Ok((out.return_value as i32, out.duration))
    }
}
