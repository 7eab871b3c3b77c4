//! The test kit's Redis Cluster forms, and fails a primary over, as the
//! cluster-mode tests will need.

use chorus_testkit::{RedisCluster, cluster_info, cluster_nodes, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_primaries_with_a_replica_each_and_a_failover() {
    let mut cluster = RedisCluster::start().await;
    let info = cluster_info(&cluster.servers[5])
        .await
        .expect("CLUSTER INFO");
    assert!(info.contains("cluster_size:3"), "{info}");
    assert!(info.contains("cluster_known_nodes:6"), "{info}");
    assert_eq!(cluster.seeds().split(',').count(), 6);

    // The first server is a primary (redis-cli makes the first three the
    // primaries); killed, its replica takes over and the cluster is ok again.
    let killed = format!(" {}@", cluster.servers[0].addr());
    cluster.servers[0].kill().await;
    let survivor = &cluster.servers[1];
    eventually("a replica to take the killed primary's place", || async {
        let nodes = cluster_nodes(survivor).await?;
        let flags = |line: &str| line.split(' ').nth(2).unwrap_or("").to_owned();
        let dead = nodes
            .lines()
            .any(|line| line.contains(&killed) && flags(line).contains("fail"));
        let live_primaries = nodes
            .lines()
            .filter(|line| flags(line).contains("master") && !flags(line).contains("fail"))
            .count();
        (dead && live_primaries == 3).then_some(())
    })
    .await;
    let info = cluster_info(survivor).await.expect("CLUSTER INFO");
    assert!(info.contains("cluster_state:ok"), "{info}");
}
