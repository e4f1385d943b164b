"""A real one-node SLURM cluster for the tests: Debian's slurmctld, slurmd and slurmdbd (with a
MariaDB, so ``sacct`` answers, which submitit needs to see a job that ended without a result),
authenticated by munge, every file in one temporary folder, every daemon stopped by its pid.

    with SlurmCluster.start(folder) as cluster:       # or the ``slurm`` fixture (conftest.py)
        subprocess.run(["sbatch", ...], env=cluster.env)

``python tests/slurm_cluster.py FOLDER`` starts one by hand and prints the ``SLURM_CONF`` to
export (Ctrl-C stops it). Needs root and apt, as CI has: :func:`install` installs the packages
where they are missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from debian import install_packages

PACKAGES = {
    "slurmctld": "slurmctld",
    "slurmd": "slurmd",
    "sbatch": "slurm-client",
    "munged": "munge",
    "slurmdbd": "slurmdbd",
    "mariadbd": "mariadb-server",
}
# the node is this machine, by its own name: Lightning's DDP under srun reaches the first
# process at the node's name (SLURM_NODELIST), so it must resolve
NODE = socket.gethostname().split(".")[0]
PARTITION = "cpu"  # as the README's CPU-only cluster command names it


def missing_packages() -> list[str]:
    return sorted(
        {
            package
            for command, package in PACKAGES.items()
            if shutil.which(command) is None and not Path("/usr/sbin", command).exists()
        }
    )


def install() -> str | None:
    """Install the Debian packages where missing; the reason it cannot, or None."""
    return install_packages("SLURM", missing_packages())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_memory_mb() -> int:
    """RealMemory a little below what the machine has (slurmd drains a node that claims more)."""
    total_kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal:"))
    return int(total_kb / 1024 * 0.9)


@dataclass
class SlurmCluster:
    folder: Path
    cpus: int
    memory_mb: int
    pids: dict[str, int] = field(default_factory=dict)
    _stop_prompting: threading.Event = field(default_factory=threading.Event)

    @property
    def env(self) -> dict[str, str]:
        """The environment for clients (sbatch, squeue, submitit): without SLURM_CONF they look
        for a configuration server and fail."""
        return {**os.environ, "SLURM_CONF": str(self.folder / "slurm.conf")}

    @classmethod
    def start(cls, folder: Path, timeout: float = 60) -> SlurmCluster:
        folder = Path(folder).absolute()
        for sub in ("state", "spool", "db", "munge"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        cluster = cls(folder, cpus=os.cpu_count() or 1, memory_mb=node_memory_mb())
        try:
            cluster._start_munge()
            cluster._start_database()
            cluster._write_configs()
            cluster._daemon("slurmdbd", ["slurmdbd", "-D"], ready=cluster._dbd_ready, timeout=timeout)
            cluster._daemon("slurmctld", ["slurmctld", "-D", "-i"], ready=cluster._ctld_ready, timeout=timeout)
            cluster._daemon("slurmd", ["slurmd", "-D", "-N", NODE], ready=cluster._node_idle, timeout=timeout)
            threading.Thread(target=cluster._prompt_requeued_jobs, daemon=True).start()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def __enter__(self) -> SlurmCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- daemons -------------------------------------------------------------------------------
    def _daemon(self, name: str, argv: list[str], ready, timeout: float) -> None:
        log = open(self.folder / f"{name}.out", "w")
        process = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.pids[name] = process.pid
        deadline = time.monotonic() + timeout
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start: {self.log_tail(name)}")
            time.sleep(0.2)

    def log_tail(self, name: str, lines: int = 15) -> str:
        texts = []
        for path in (self.folder / f"{name}.out", self.folder / f"{name}.log"):
            if path.is_file():
                texts.append("\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(texts)

    def _start_munge(self) -> None:
        key = self.folder / "munge" / "munge.key"
        key.write_bytes(os.urandom(128))
        key.chmod(0o600)
        self.munge_socket = self.folder / "munge" / "munge.socket"
        # --force: as root, on a folder munged would otherwise find too open
        argv = [
            "munged",
            "--foreground",
            "--force",
            f"--key-file={key}",
            f"--socket={self.munge_socket}",
            f"--pid-file={self.folder / 'munge' / 'munged.pid'}",
            f"--log-file={self.folder / 'munge.log'}",
            f"--seed-file={self.folder / 'munge' / 'munged.seed'}",
        ]
        self._daemon("munged", argv, ready=self.munge_socket.exists, timeout=20)

    def _start_database(self) -> None:
        datadir, self.db_port = self.folder / "db", free_port()
        subprocess.run(
            ["mariadb-install-db", f"--datadir={datadir}", "--user=root", "--auth-root-authentication-method=normal"],
            check=True,
            capture_output=True,
        )
        self.db_socket = self.folder / "mysql.sock"
        # a throw-away database of this cluster: no grant tables, reachable on loopback only
        argv = [
            "mariadbd",
            "--no-defaults",
            f"--datadir={datadir}",
            "--user=root",
            "--skip-grant-tables",
            "--bind-address=127.0.0.1",
            f"--port={self.db_port}",
            f"--socket={self.db_socket}",
            f"--pid-file={self.folder / 'mariadb.pid'}",
        ]
        self._daemon("mariadbd", argv, ready=self.db_socket.exists, timeout=60)

    def _write_configs(self) -> None:
        f, self.ctld_port, self.slurmd_port, self.dbd_port = self.folder, free_port(), free_port(), free_port()
        (f / "slurmdbd.conf").write_text(f"""\
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={self.dbd_port}
SlurmUser=root
LogFile={f / "slurmdbd.log"}
PidFile={f / "slurmdbd.pid"}
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={self.db_port}
StorageUser=root
StorageLoc=slurm_acct_db
""")
        (f / "slurmdbd.conf").chmod(0o600)  # slurmdbd refuses a config others can read
        (f / "slurm.conf").write_text(f"""\
ClusterName=resdeg
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={self.ctld_port}
SlurmdPort={self.slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
CredType=cred/munge
StateSaveLocation={f / "state"}
SlurmdSpoolDir={f / "spool"}
SlurmctldPidFile={f / "slurmctld.pid"}
SlurmdPidFile={f / "slurmd.pid"}
SlurmctldLogFile={f / "slurmctld.log"}
SlurmdLogFile={f / "slurmd.log"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without a default each job is given the node's whole memory, and jobs run one at a time
DefMemPerCPU={self.memory_mb // max(1, self.cpus)}
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort={self.dbd_port}
# the munge socket for the connection to slurmdbd (AuthInfo covers the others)
AccountingStoragePass={self.munge_socket}
KillWait=10
NodeName={NODE} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} State=UNKNOWN
PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
""")

    def _run(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(argv), env=self.env, capture_output=True, text=True, timeout=30)

    def _dbd_ready(self) -> bool:
        return (
            "slurmdbd version" in (self.folder / "slurmdbd.log").read_text(errors="replace")
            if (self.folder / "slurmdbd.log").is_file()
            else False
        )

    def _ctld_ready(self) -> bool:
        return self._run("scontrol", "ping").returncode == 0

    def _node_idle(self) -> bool:
        return self._run("sinfo", "-h", "-n", NODE, "-o", "%t").stdout.strip() == "idle"

    def _prompt_requeued_jobs(self) -> None:
        """SLURM holds a requeued job back (BeginTime) for about two minutes; on this test cluster
        it starts again at once, as it would on a busy one once resources free up."""
        while not self._stop_prompting.wait(1.0):
            pending = self._run("squeue", "-h", "-t", "PD", "-o", "%i %r")
            for line in pending.stdout.splitlines():
                job, _, reason = line.partition(" ")
                if reason.strip() == "BeginTime":
                    self._run("scontrol", "update", f"JobId={job}", "StartTime=now")

    # --- for the tests -------------------------------------------------------------------------
    def job_state(self, job: str) -> str:
        """The job's state as accounting records it (COMPLETED, CANCELLED, REQUEUED...)."""
        out = self._run("sacct", "-n", "-X", "-P", "-j", job, "-o", "State").stdout.split()
        return out[-1] if out else ""

    def stop(self) -> None:
        self._stop_prompting.set()
        if "slurmd" in self.pids:  # jobs first: their processes would outlive slurmd
            self._run("scancel", "--full", f"--user={os.getuid()}")
            deadline = time.monotonic() + 30
            while self._run("squeue", "-h", "-o", "%i").stdout.strip() and time.monotonic() < deadline:
                time.sleep(0.5)
        for name in ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged"):
            pid = self.pids.pop(name, None)
            if pid is None:
                continue
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    if os.waitpid(pid, os.WNOHANG)[0]:
                        break
                except ChildProcessError:
                    break
                time.sleep(0.1)
            else:
                os.killpg(pid, signal.SIGKILL)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the daemons on `kill` too
    reason = install()
    if reason:
        sys.exit(reason)
    with SlurmCluster.start(Path(sys.argv[1] if len(sys.argv) > 1 else "experiments/slurm-cluster")) as cluster:
        print(f"export SLURM_CONF={cluster.folder / 'slurm.conf'}   # Ctrl-C stops the cluster", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
