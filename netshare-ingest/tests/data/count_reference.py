#!/usr/bin/env python3
"""Independent counts of the real captures, made once with tshark (Wireshark's dissectors).

Run from the repository root:  python3 netshare-ingest/tests/data/count_reference.py
It reads the captures in ../shared/data/pcap (or, for those only embedded, fixtures/data/pcap)
and writes count_reference.json beside this
script. The ingest tests compare our reader's counts with this file; CI needs neither tshark
nor Python for that.

Per capture: frames, IPv4 packets (the first network layer after the link layers is IPv4),
IPv6 packets, distinct five-tuples of the IPv4 packets (ports only for TCP/UDP, as SPEC §1),
and the sums of IP total length and TTL as a cheap check of the other fields; for the IPv6
packets the same: distinct five-tuples (the protocol is the first layer after the IPv6 header
and its extension headers), sums of 40 + payload length and of the hop limit.
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.normpath(os.path.join(HERE, "..", "..", "..", "..", "shared", "data", "pcap"))
EMBEDDED = os.path.normpath(os.path.join(HERE, "..", "..", "..", "fixtures", "data", "pcap"))
CAPTURES = ["skype.pcap", "teams.pcap", "alexa-app.pcap", "WebattackXSS.pcap", "cicids2017-demo.pcapng",
            "quic_interop_V.pcapng"]
LINK = {"eth", "ethertype", "vlan", "ieee8021ad", "sll", "null", "loop", "raw", "fcs"}
FIELDS = ["frame.protocols", "ip.src", "ip.dst", "ip.proto", "ip.len", "ip.ttl", "ip.frag_offset",
          "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport",
          "ipv6.src", "ipv6.dst", "ipv6.plen", "ipv6.hlim"]
IPV6_EXT = {"ipv6.hopopts", "ipv6.routing", "ipv6.dstopts", "ipv6.fraghdr"}
UPPER = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "igmp": 2, "gre": 47, "esp": 50, "ah": 51}


def count(path):
    cmd = ["tshark", "-n", "-r", path, "-o", "ip.defragment:FALSE", "-T", "fields",
           "-E", "separator=\t", "-E", "occurrence=f"]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    frames = ipv4 = ipv6 = sum_len = sum_ttl = sum_len6 = sum_hlim = 0
    tuples = set()
    tuples6 = set()
    for line in out.splitlines():
        frames += 1
        v = dict(zip(FIELDS, line.split("\t")))
        layers = [p for p in v["frame.protocols"].split(":") if p not in LINK]
        first = layers[0] if layers else ""
        if first == "ipv6":
            ipv6 += 1
            rest = [p for p in layers[1:] if p not in IPV6_EXT]
            proto = UPPER[rest[0]] if rest else 59
            sp = dp = 0
            if proto == 6 and v["tcp.srcport"]:
                sp, dp = int(v["tcp.srcport"]), int(v["tcp.dstport"])
            if proto == 17 and v["udp.srcport"]:
                sp, dp = int(v["udp.srcport"]), int(v["udp.dstport"])
            tuples6.add((v["ipv6.src"], v["ipv6.dst"], sp, dp, proto))
            sum_len6 += 40 + int(v["ipv6.plen"])
            sum_hlim += int(v["ipv6.hlim"])
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
            "sum_ip_len": sum_len, "sum_ttl": sum_ttl, "ipv6_five_tuples": len(tuples6),
            "sum_ipv6_len": sum_len6, "sum_hop_limit": sum_hlim}


def main():
    version = subprocess.run(["tshark", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    table = {"made_with": version, "captures": {}}
    for c in CAPTURES:
        path = os.path.join(DATA, c)
        if not os.path.exists(path):
            path = os.path.join(EMBEDDED, c)
        table["captures"]["pcap/" + c] = count(path)
        print(c, table["captures"]["pcap/" + c], file=sys.stderr)
    with open(os.path.join(HERE, "count_reference.json"), "w") as f:
        json.dump(table, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
