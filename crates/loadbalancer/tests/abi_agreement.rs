//! This crate's datapath values agree with the mirrors of `bpf/lib/lb.h` in
//! `cilium_datapath::lb_abi`, so what the planner writes is what the C code reads.

use cilium_datapath::lb_abi;
use cilium_loadbalancer::frontend::{
    SVC_FLAG_AFFINITY, SVC_FLAG_EXTERNAL_IP, SVC_FLAG_EXT_LOCAL_SCOPE, SVC_FLAG_INT_LOCAL_SCOPE,
    SVC_FLAG_LOADBALANCER, SVC_FLAG_NODEPORT, SVC_FLAG_ROUTABLE, SVC_FLAG_TWO_SCOPES,
};
use cilium_loadbalancer::maglev::DEFAULT_TABLE_SIZE;
use cilium_loadbalancer::{Algorithm, BackendState, Protocol, Scope};

#[test]
fn flags_scopes_states_and_algorithms_match_the_c_values() {
    assert_eq!(SVC_FLAG_EXTERNAL_IP, lb_abi::SVC_FLAG_EXTERNAL_IP);
    assert_eq!(SVC_FLAG_NODEPORT, lb_abi::SVC_FLAG_NODEPORT);
    assert_eq!(SVC_FLAG_EXT_LOCAL_SCOPE, lb_abi::SVC_FLAG_EXT_LOCAL_SCOPE);
    assert_eq!(SVC_FLAG_AFFINITY, lb_abi::SVC_FLAG_AFFINITY);
    assert_eq!(SVC_FLAG_LOADBALANCER, lb_abi::SVC_FLAG_LOADBALANCER);
    assert_eq!(SVC_FLAG_ROUTABLE, lb_abi::SVC_FLAG_ROUTABLE);
    assert_eq!(SVC_FLAG_INT_LOCAL_SCOPE, lb_abi::SVC_FLAG_INT_LOCAL_SCOPE);
    assert_eq!(SVC_FLAG_TWO_SCOPES, lb_abi::SVC_FLAG_TWO_SCOPES);
    assert_eq!(Scope::External.value(), lb_abi::LB_LOOKUP_SCOPE_EXT);
    assert_eq!(Scope::Internal.value(), lb_abi::LB_LOOKUP_SCOPE_INT);
    assert_eq!(BackendState::Active.value(), lb_abi::BE_STATE_ACTIVE);
    assert_eq!(
        BackendState::Terminating.value(),
        lb_abi::BE_STATE_TERMINATING
    );
    assert_eq!(Algorithm::Random.selection(), lb_abi::LB_SELECTION_RANDOM);
    assert_eq!(Algorithm::Maglev.selection(), lb_abi::LB_SELECTION_MAGLEV);
    assert_eq!(DEFAULT_TABLE_SIZE as usize, lb_abi::LB_MAGLEV_LUT_SIZE);
}

#[test]
fn values_read_back_from_the_maps_decode_to_what_was_written() {
    for scope in [Scope::External, Scope::Internal] {
        assert_eq!(Scope::from_value(scope.value()), Some(scope));
    }
    for state in [BackendState::Active, BackendState::Terminating] {
        assert_eq!(BackendState::from_value(state.value()), Some(state));
    }
    assert_eq!(BackendState::from_value(lb_abi::BE_STATE_MAINTENANCE), None);
    for algorithm in [Algorithm::Random, Algorithm::Maglev] {
        let master = lb_abi::Lb4Service::master(1, 7, 0, 0, algorithm.selection(), 60);
        assert_eq!(
            Algorithm::from_selection(master.algorithm()),
            Some(algorithm)
        );
        assert_eq!(master.affinity_timeout(), 60);
    }
    for protocol in [Protocol::Tcp, Protocol::Udp] {
        assert_eq!(Protocol::from_number(protocol.number()), Some(protocol));
    }
}
