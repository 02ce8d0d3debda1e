//! The strong path's Raft RPCs over the nodes' real libp2p connections: three voters on
//! loopback form a cluster, elect a leader and commit; a follower reads linearizably.

use std::sync::Arc;
use std::time::Duration;

use statemesh::raft::{KvApplier, KvOp, NodeInfo, RaftInstruments, Role, StartOptions, StrongError, StrongPath};
use statemesh::storage::MemoryStorage;
use statemesh::testkit::{eventually, memory_cluster, quick_raft_settings, Member};

const SETTLE: Duration = Duration::from_secs(30);

struct Voter {
    path: StrongPath,
    kv: Arc<KvApplier>,
}

fn info(member: &Member) -> NodeInfo {
    NodeInfo::new(member.node.node_id().to_string(), member.addrs()[0].clone())
}

async fn start_voters(members: &[Member]) -> Vec<Voter> {
    let mut voters = Vec::new();
    for member in members {
        let storage = Arc::new(MemoryStorage::new());
        let kv = Arc::new(KvApplier::new(storage.clone()));
        let net = member.network().expect("replicating");
        let path = StrongPath::start(StartOptions {
            me: info(member),
            settings: quick_raft_settings(),
            storage,
            applier: kv.clone(),
            transport: net.raft_transport(),
            instruments: RaftInstruments::default(),
        })
        .await
        .expect("strong path starts");
        net.serve_raft(Arc::new(path.clone()));
        voters.push(Voter { path, kv });
    }
    let all: Vec<NodeInfo> = members.iter().map(info).collect();
    for voter in &voters {
        voter.path.initialize(all.clone()).await.expect("initialize");
    }
    voters
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_voters_commit_over_libp2p_and_a_follower_reads_linearizably() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let members = memory_cluster(3).await;
        let voters = start_voters(&members).await;
        eventually(SETTLE, "a leader is elected", || async {
            voters.iter().any(|v| v.path.status().role == Role::Leader)
        })
        .await;
        let leader = voters.iter().position(|v| v.path.status().role == Role::Leader).expect("leader");
        let follower = (leader + 1) % voters.len();

        // A follower refuses to propose and names the leader.
        let op = KvOp::Put { key: b"k".to_vec(), value: b"v1".to_vec() };
        match voters[follower].path.propose(op.to_command()).await {
            Err(StrongError::NotLeader { leader: Some(named) }) => {
                assert_eq!(named.peer_id, voters[leader].path.me().peer_id);
            }
            other => panic!("expected NotLeader naming the leader, got {other:?}"),
        }
        let committed = voters[leader].path.propose(op.to_command()).await.expect("commit through the leader");

        // Read-index on the follower: once it returns, the write is applied there.
        let position = voters[follower].path.read_index().await.expect("read index").expect("a position");
        assert!(position.index >= committed.position.index);
        let register = voters[follower].kv.get(b"k").expect("read").expect("the key exists on the follower");
        assert_eq!(register.value, b"v1");
        for voter in &voters {
            voter.path.wait_applied_index(committed.position.index, SETTLE).await.expect("applied everywhere");
            assert_eq!(voter.kv.get(b"k").expect("read").map(|r| r.value), Some(b"v1".to_vec()));
        }
        for voter in &voters {
            voter.path.shutdown().await.expect("shutdown");
        }
    })
    .await
    .expect("the test finished within its budget");
}
