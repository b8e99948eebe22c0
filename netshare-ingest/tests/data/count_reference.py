#!/usr/bin/env python3
"""Independent counts of the real captures, made once with tshark (Wireshark's dissectors).

Run from the repository root:  python3 netshare-ingest/tests/data/count_reference.py
It reads the captures in ../shared/data/pcap and writes count_reference.json beside this
script. The ingest tests compare our reader's counts with this file; CI needs neither tshark
nor Python for that.

Per capture: frames, IPv4 packets (the first network layer after the link layers is IPv4),
IPv6 packets, distinct five-tuples of the IPv4 packets (ports only for TCP/UDP, as SPEC §1),
and the sums of IP total length and TTL as a cheap check of the other fields.
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.normpath(os.path.join(HERE, "..", "..", "..", "..", "shared", "data", "pcap"))
CAPTURES = ["skype.pcap", "teams.pcap", "alexa-app.pcap", "WebattackXSS.pcap", "cicids2017-demo.pcapng"]
LINK = {"eth", "ethertype", "vlan", "ieee8021ad", "sll", "null", "loop", "raw", "fcs"}
FIELDS = ["frame.protocols", "ip.src", "ip.dst", "ip.proto", "ip.len", "ip.ttl", "ip.frag_offset",
          "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport"]


def count(path):
    cmd = ["tshark", "-n", "-r", path, "-o", "ip.defragment:FALSE", "-T", "fields",
           "-E", "separator=\t", "-E", "occurrence=f"]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    frames = ipv4 = ipv6 = sum_len = sum_ttl = 0
    tuples = set()
    for line in out.splitlines():
        frames += 1
        v = dict(zip(FIELDS, line.split("\t")))
        layers = [p for p in v["frame.protocols"].split(":") if p not in LINK]
        first = layers[0] if layers else ""
        if first == "ipv6":
            ipv6 += 1
        if first != "ip":
            continue
        ipv4 += 1
        proto = int(v["ip.proto"])
        sp = dp = 0
        frag = int(v["ip.frag_offset"] or 0)
        if frag == 0 and proto == 6 and v["tcp.srcport"]:
            sp, dp = int(v["tcp.srcport"]), int(v["tcp.dstport"])
        if frag == 0 and proto == 17 and v["udp.srcport"]:
            sp, dp = int(v["udp.srcport"]), int(v["udp.dstport"])
        tuples.add((v["ip.src"], v["ip.dst"], sp, dp, proto))
        sum_len += int(v["ip.len"])
        sum_ttl += int(v["ip.ttl"])
    return {"frames": frames, "ipv4": ipv4, "ipv6": ipv6, "five_tuples": len(tuples),
            "sum_ip_len": sum_len, "sum_ttl": sum_ttl}


def main():
    version = subprocess.run(["tshark", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    table = {"made_with": version, "captures": {}}
    for c in CAPTURES:
        table["captures"]["pcap/" + c] = count(os.path.join(DATA, c))
        print(c, table["captures"]["pcap/" + c], file=sys.stderr)
    with open(os.path.join(HERE, "count_reference.json"), "w") as f:
        json.dump(table, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
