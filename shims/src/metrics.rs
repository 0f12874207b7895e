//! `wrun events --stats` (runc's statistics JSON) turned into containerd's metrics messages:
//! `io.containerd.cgroups.v1.Metrics` on v1 and hybrid hosts, `...v2.Metrics` on pure v2 hosts,
//! as containerd's own shims choose.

use containerd_shim::protos::cgroups::metrics as v1;
use containerd_shim::protos::cgroups_v2::metrics as v2;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{MessageField, MessageFull};
use serde_json::Value;

use crate::error::{Error, Result};

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn pack<M: MessageFull>(m: &M) -> Result<Any> {
    let value = m
        .write_to_bytes()
        .map_err(|e| Error::Invalid(format!("encode metrics: {e}")))?;
    Ok(Any {
        type_url: M::descriptor().full_name().to_string(),
        value,
        ..Default::default()
    })
}

/// The metrics message for this host, packed as containerd expects it in `StatsResponse`.
pub fn to_any(stats: &Value, v2_host: bool) -> Result<Any> {
    if v2_host {
        pack(&to_v2(stats))
    } else {
        pack(&to_v1(stats))
    }
}

fn entry(v: &Value) -> MessageField<v1::MemoryEntry> {
    MessageField::some(v1::MemoryEntry {
        limit: u(&v["limit"]),
        usage: u(&v["usage"]),
        max: u(&v["max"]),
        failcnt: u(&v["failcnt"]),
        ..Default::default()
    })
}

fn blkio(list: &Value) -> Vec<v1::BlkIOEntry> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|e| v1::BlkIOEntry {
            op: e["op"].as_str().unwrap_or_default().to_string(),
            major: u(&e["major"]),
            minor: u(&e["minor"]),
            value: u(&e["value"]),
            ..Default::default()
        })
        .collect()
}

pub fn to_v1(s: &Value) -> v1::Metrics {
    let raw = &s["memory"]["raw"];
    let r = |k: &str| u(&raw[k]);
    let cpu = &s["cpu"];
    let mut m = v1::Metrics::new();
    m.cpu = MessageField::some(v1::CPUStat {
        usage: MessageField::some(v1::CPUUsage {
            total: u(&cpu["usage"]["total"]),
            kernel: u(&cpu["usage"]["kernel"]),
            user: u(&cpu["usage"]["user"]),
            per_cpu: cpu["usage"]["percpu"]
                .as_array()
                .map(|a| a.iter().map(u).collect())
                .unwrap_or_default(),
            ..Default::default()
        }),
        throttling: MessageField::some(v1::Throttle {
            periods: u(&cpu["throttling"]["periods"]),
            throttled_periods: u(&cpu["throttling"]["throttled_periods"]),
            throttled_time: u(&cpu["throttling"]["throttled_time"]),
            ..Default::default()
        }),
        ..Default::default()
    });
    m.memory = MessageField::some(v1::MemoryStat {
        cache: u(&s["memory"]["cache"]),
        rss: r("rss"),
        rss_huge: r("rss_huge"),
        mapped_file: r("mapped_file"),
        dirty: r("dirty"),
        writeback: r("writeback"),
        pg_pg_in: r("pgpgin"),
        pg_pg_out: r("pgpgout"),
        pg_fault: r("pgfault"),
        pg_maj_fault: r("pgmajfault"),
        inactive_anon: r("inactive_anon"),
        active_anon: r("active_anon"),
        inactive_file: r("inactive_file"),
        active_file: r("active_file"),
        unevictable: r("unevictable"),
        hierarchical_memory_limit: r("hierarchical_memory_limit"),
        hierarchical_swap_limit: r("hierarchical_memsw_limit"),
        total_cache: r("total_cache"),
        total_rss: r("total_rss"),
        total_rss_huge: r("total_rss_huge"),
        total_mapped_file: r("total_mapped_file"),
        total_dirty: r("total_dirty"),
        total_writeback: r("total_writeback"),
        total_pg_pg_in: r("total_pgpgin"),
        total_pg_pg_out: r("total_pgpgout"),
        total_pg_fault: r("total_pgfault"),
        total_pg_maj_fault: r("total_pgmajfault"),
        total_inactive_anon: r("total_inactive_anon"),
        total_active_anon: r("total_active_anon"),
        total_inactive_file: r("total_inactive_file"),
        total_active_file: r("total_active_file"),
        total_unevictable: r("total_unevictable"),
        usage: entry(&s["memory"]["usage"]),
        swap: entry(&s["memory"]["swap"]),
        ..Default::default()
    });
    m.pids = MessageField::some(v1::PidsStat {
        current: u(&s["pids"]["current"]),
        limit: u(&s["pids"]["limit"]),
        ..Default::default()
    });
    m.blkio = MessageField::some(v1::BlkIOStat {
        io_service_bytes_recursive: blkio(&s["blkio"]["ioServiceBytesRecursive"]),
        io_serviced_recursive: blkio(&s["blkio"]["ioServicedRecursive"]),
        ..Default::default()
    });
    if let Some(h) = s["hugetlb"].as_object() {
        m.hugetlb = h
            .iter()
            .map(|(size, e)| v1::HugetlbStat {
                usage: u(&e["usage"]),
                max: u(&e["max"]),
                failcnt: u(&e["failcnt"]),
                pagesize: size.clone(),
                ..Default::default()
            })
            .collect();
    }
    m
}

pub fn to_v2(s: &Value) -> v2::Metrics {
    let raw = &s["memory"]["raw"];
    let r = |k: &str| u(&raw[k]);
    let cpu = &s["cpu"];
    let usec = |v: &Value| u(v) / 1000;
    let mut m = v2::Metrics::new();
    m.cpu = MessageField::some(v2::CPUStat {
        usage_usec: usec(&cpu["usage"]["total"]),
        user_usec: usec(&cpu["usage"]["user"]),
        system_usec: usec(&cpu["usage"]["kernel"]),
        nr_periods: u(&cpu["throttling"]["periods"]),
        nr_throttled: u(&cpu["throttling"]["throttled_periods"]),
        throttled_usec: usec(&cpu["throttling"]["throttled_time"]),
        ..Default::default()
    });
    let mem = &s["memory"];
    m.memory = MessageField::some(v2::MemoryStat {
        anon: r("anon"),
        file: r("file"),
        kernel_stack: r("kernel_stack"),
        slab: r("slab"),
        sock: r("sock"),
        shmem: r("shmem"),
        file_mapped: r("file_mapped"),
        file_dirty: r("file_dirty"),
        file_writeback: r("file_writeback"),
        anon_thp: r("anon_thp"),
        inactive_anon: r("inactive_anon"),
        active_anon: r("active_anon"),
        inactive_file: r("inactive_file"),
        active_file: r("active_file"),
        unevictable: r("unevictable"),
        slab_reclaimable: r("slab_reclaimable"),
        slab_unreclaimable: r("slab_unreclaimable"),
        pgfault: r("pgfault"),
        pgmajfault: r("pgmajfault"),
        usage: u(&mem["usage"]["usage"]),
        usage_limit: u(&mem["usage"]["limit"]),
        max_usage: u(&mem["usage"]["max"]),
        swap_usage: u(&mem["swap"]["usage"]),
        swap_limit: u(&mem["swap"]["limit"]),
        swap_max_usage: u(&mem["swap"]["max"]),
        ..Default::default()
    });
    m.pids = MessageField::some(v2::PidsStat {
        current: u(&s["pids"]["current"]),
        limit: u(&s["pids"]["limit"]),
        ..Default::default()
    });
    let mut io = v2::IOStat::new();
    let mut devices: Vec<(u64, u64)> = Vec::new();
    for list in ["ioServiceBytesRecursive", "ioServicedRecursive"] {
        for e in s["blkio"][list].as_array().into_iter().flatten() {
            let d = (u(&e["major"]), u(&e["minor"]));
            if !devices.contains(&d) {
                devices.push(d);
            }
        }
    }
    for (major, minor) in devices {
        let mut e = v2::IOEntry {
            major,
            minor,
            ..Default::default()
        };
        for (list, bytes) in [("ioServiceBytesRecursive", true), ("ioServicedRecursive", false)] {
            for x in s["blkio"][list].as_array().into_iter().flatten() {
                if (u(&x["major"]), u(&x["minor"])) != (major, minor) {
                    continue;
                }
                let read = x["op"] == "Read";
                match (bytes, read) {
                    (true, true) => e.rbytes = u(&x["value"]),
                    (true, false) => e.wbytes = u(&x["value"]),
                    (false, true) => e.rios = u(&x["value"]),
                    (false, false) => e.wios = u(&x["value"]),
                }
            }
        }
        io.usage.push(e);
    }
    m.io = MessageField::some(io);
    if let Some(h) = s["hugetlb"].as_object() {
        m.hugetlb = h
            .iter()
            .map(|(size, e)| v2::HugeTlbStat {
                current: u(&e["usage"]),
                max: u(&e["max"]),
                pagesize: size.clone(),
                ..Default::default()
            })
            .collect();
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim::protos::protobuf::Message;
    use serde_json::json;

    fn sample() -> Value {
        json!({
            "cpu": {"usage": {"total": 3_000_000, "percpu": [1_000_000, 2_000_000], "kernel": 1_000_000, "user": 2_000_000},
                    "throttling": {"periods": 5, "throttled_periods": 2, "throttled_time": 7000}},
            "memory": {"cache": 4096, "usage": {"limit": 67_108_864, "usage": 1_048_576, "max": 2_097_152, "failcnt": 1},
                       "swap": {"limit": 0, "usage": 0, "max": 0, "failcnt": 0},
                       "raw": {"rss": 8192, "total_rss": 8192, "anon": 8192, "file": 4096}},
            "pids": {"current": 2, "limit": 16},
            "blkio": {"ioServiceBytesRecursive": [{"major": 8, "minor": 0, "op": "Read", "value": 100},
                                                  {"major": 8, "minor": 0, "op": "Write", "value": 200}],
                      "ioServicedRecursive": [{"major": 8, "minor": 0, "op": "Read", "value": 1}]},
            "hugetlb": {"2MB": {"usage": 0, "max": 0, "failcnt": 0}}
        })
    }

    #[test]
    fn v1_metrics_carry_the_runtime_statistics() {
        let m = to_v1(&sample());
        assert_eq!(m.cpu.usage.total, 3_000_000);
        assert_eq!(m.cpu.usage.per_cpu, vec![1_000_000, 2_000_000]);
        assert_eq!(m.cpu.throttling.throttled_periods, 2);
        assert_eq!(m.memory.usage.limit, 67_108_864);
        assert_eq!(m.memory.usage.failcnt, 1);
        assert_eq!(m.memory.total_rss, 8192);
        assert_eq!(m.memory.cache, 4096);
        assert_eq!(m.pids.current, 2);
        assert_eq!(m.pids.limit, 16);
        assert_eq!(m.blkio.io_service_bytes_recursive.len(), 2);
        assert_eq!(m.hugetlb[0].pagesize, "2MB");
    }

    #[test]
    fn v2_metrics_are_in_microseconds_and_one_io_entry_per_device() {
        let m = to_v2(&sample());
        assert_eq!(m.cpu.usage_usec, 3000);
        assert_eq!(m.cpu.throttled_usec, 7);
        assert_eq!(m.memory.usage, 1_048_576);
        assert_eq!(m.memory.usage_limit, 67_108_864);
        assert_eq!(m.memory.anon, 8192);
        assert_eq!(m.io.usage.len(), 1);
        let e = &m.io.usage[0];
        assert_eq!((e.rbytes, e.wbytes, e.rios, e.wios), (100, 200, 1, 0));
    }

    #[test]
    fn packed_metrics_name_the_type_containerd_registers() {
        let a = to_any(&sample(), false).unwrap();
        assert_eq!(a.type_url, "io.containerd.cgroups.v1.Metrics");
        let b = to_any(&sample(), true).unwrap();
        assert_eq!(b.type_url, "io.containerd.cgroups.v2.Metrics");
        let back = v1::Metrics::parse_from_bytes(&a.value).unwrap();
        assert_eq!(back.pids.current, 2);
    }
}
