"""A real Redis Cluster for tests: 3 masters + 1 replica each, on free loopback ports, built with redis-cli."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import redis

from tests.servers import RedisServer, free_port


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is a valid, free port too."""
    while True:
        port = free_port()
        if port + 10000 < 65536:
            try:
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port + 10000))
                return port
            except OSError:
                continue


class RedisClusterServers:
    """`redis-server --cluster-enabled yes` x (masters x (1 + replicas)), joined by `redis-cli --cluster create`."""

    def __init__(self, masters: int = 3, replicas: int = 1) -> None:
        self.cli = shutil.which("redis-cli")
        if self.cli is None:
            raise RuntimeError("redis-cli is not installed (Debian: apt-get install redis-tools)")
        self.masters, self.replicas = masters, replicas
        args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
                "--appendonly", "yes"]  # fmt: skip
        self.servers = [RedisServer(port=_cluster_port(), args=args) for _ in range(masters * (1 + replicas))]

    def start(self, timeout: float = 60.0) -> RedisClusterServers:
        try:
            return self._start(timeout)
        except BaseException:
            self.close()  # never leave half a cluster running
            raise

    def _start(self, timeout: float) -> RedisClusterServers:
        for server in self.servers:
            server.start()
        nodes = [f"127.0.0.1:{server.port}" for server in self.servers]
        subprocess.run(
            [self.cli, "--cluster", "create", *nodes, "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            check=True, capture_output=True, timeout=timeout,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        replicas = self.masters * self.replicas
        while time.monotonic() < deadline:
            # state ok everywhere, and every node already sees every replica (gossip lags `cluster create`)
            if all(self._info(s).get("cluster_state") == "ok" for s in self.servers) and all(
                sum("slave" in line.split()[2] for line in self._nodes(s)) == replicas for s in self.servers
            ):
                return self
            time.sleep(0.2)
        raise RuntimeError("the Redis Cluster did not become ok in time")

    @property
    def url(self) -> str:
        return self.servers[0].url

    def client(self) -> redis.cluster.RedisCluster:
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(self.url)

    def _info(self, server: RedisServer) -> dict[str, str]:
        text = server.client().execute_command("CLUSTER", "INFO")
        text = text.decode() if isinstance(text, bytes) else text
        return dict(line.split(":", 1) for line in text.strip().splitlines() if ":" in line)

    def replica_of_key(self, key: str) -> RedisServer:
        """The replica serving the slot of `key` (to promote it with CLUSTER FAILOVER)."""
        client = self.client()
        slot = client.keyslot(key)
        master = client.nodes_manager.get_node_from_slot(slot)
        master_id = next(
            line.split()[0]
            for line in self._nodes(self.servers[0])
            if line.split()[1].startswith(f"{master.host}:{master.port}")
        )
        for line in self._nodes(self.servers[0]):
            fields = line.split()
            if "slave" in fields[2] and fields[3] == master_id:
                port = int(fields[1].split("@")[0].split(":")[1])
                return next(s for s in self.servers if s.port == port)
        raise RuntimeError(f"no replica for the slot of {key}")

    def _nodes(self, server: RedisServer) -> list[str]:
        text = server.client().execute_command("CLUSTER", "NODES")
        text = text.decode() if isinstance(text, bytes) else text
        return text.strip().splitlines()

    def failover(self, replica: RedisServer, timeout: float = 60.0) -> None:
        """Promote `replica` (a coordinated failover: it catches up with its master first, so nothing is lost).
        Redis abandons a manual failover that does not finish within a few seconds (a loaded machine): ask again."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            replica.client().execute_command("CLUSTER", "FAILOVER")
            attempt_ends = min(deadline, time.monotonic() + 10.0)
            while time.monotonic() < attempt_ends:
                role = replica.client().execute_command("ROLE")[0]
                if (role.decode() if isinstance(role, bytes) else role) == "master":
                    return
                time.sleep(0.1)
        raise RuntimeError(f"replica on port {replica.port} was not promoted in time")

    def close(self) -> None:
        for server in self.servers:
            server.close()
