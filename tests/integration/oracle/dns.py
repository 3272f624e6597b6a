# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A small authoritative DNS server for the oracle's test names (MX and A records).

Postfix's resolver (res_query through /etc/resolv.conf) asks it, over UDP and,
when it asks so, TCP, on port 53 of a loopback address of the oracle's /16.
It answers what it was given: the records of a name, no data (NOERROR) for a
name it knows without records of the asked type, NXDOMAIN for any other name.
The wire format is RFC 1035's; an EDNS0 OPT record in a query is ignored.

DNSSEC, as a validating resolver reports it: every answer has the AD bit
("authenticated data") except for the names marked insecure; with ``options
trust-ad`` in resolv.conf glibc passes the bit on, and Postfix takes it as
validated (there are no signatures: nothing here checks them, as nothing in
Postfix does either). TLSA records (``_PORT._tcp.HOST``) make DANE testable.
"""

import socket
import socketserver
import struct
import threading

TYPES = {'A': 1, 'NS': 2, 'CNAME': 5, 'SOA': 6, 'MX': 15, 'TXT': 16, 'AAAA': 28, 'TLSA': 52}
TTL = 60


def _name(text):
    out = b''
    for label in text.strip('.').split('.'):
        if label:
            data = label.encode('idna') if any(ord(c) > 127 for c in label) else label.encode('ascii')
            out += struct.pack('!B', len(data)) + data
    return out + b'\0'


def _read_name(packet, offset):
    labels = []
    while True:
        length = packet[offset]
        if length & 0xC0 == 0xC0:
            pointer = struct.unpack('!H', packet[offset:offset + 2])[0] & 0x3FFF
            rest, _end = _read_name(packet, pointer)
            labels.append(rest)
            return '.'.join(x for x in labels if x), offset + 2
        offset += 1
        if length == 0:
            return '.'.join(labels), offset
        labels.append(packet[offset:offset + length].decode('ascii', 'replace'))
        offset += length


class Zone(object):
    """{name: {type: [rdata]}}; MX rdata (preference, exchange), A and AAAA an address,
    TLSA (usage, selector, matching type, hex data). Names in INSECURE are answered without
    the AD bit."""

    def __init__(self):
        self.records = {}
        self.insecure = set()
        self.lock = threading.Lock()

    def mark_insecure(self, name):
        with self.lock:
            self.insecure.add(name.lower().rstrip('.'))

    def add(self, name, rtype, rdata):
        with self.lock:
            self.records.setdefault(name.lower().rstrip('.'), {}).setdefault(rtype, []).append(rdata)

    def answer(self, packet):
        """The reply to the query PACKET, or None for a packet that is no query."""
        if len(packet) < 12:
            return None
        ident, flags, qdcount = struct.unpack('!HHH', packet[:6])
        if flags & 0x8000 or qdcount != 1:
            return None
        qname, offset = _read_name(packet, 12)
        qtype, qclass = struct.unpack('!HH', packet[offset:offset + 4])
        question = packet[12:offset + 4]
        with self.lock:
            known = self.records.get(qname.lower().rstrip('.'))
            secure = qname.lower().rstrip('.') not in self.insecure
            wanted = [(name, rdata) for name, code in TYPES.items() if code == qtype
                      for rdata in (known or {}).get(name, [])]
        answers = b''
        for rtype, rdata in wanted:
            if rtype == 'MX':
                data = struct.pack('!H', rdata[0]) + _name(rdata[1])
            elif rtype == 'A':
                data = socket.inet_pton(socket.AF_INET, rdata)
            elif rtype == 'AAAA':
                data = socket.inet_pton(socket.AF_INET6, rdata)
            elif rtype == 'TLSA':
                data = struct.pack('!BBB', rdata[0], rdata[1], rdata[2]) + bytes.fromhex(rdata[3])
            else:
                continue
            answers += struct.pack('!HHHIH', 0xC00C, qtype, qclass, TTL, len(data)) + data
        rcode = 0 if known is not None else 3          # NXDOMAIN
        reply_flags = 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080 | rcode   # QR AA RD(copied) RA
        if secure:
            reply_flags |= 0x0020                       # AD
        return struct.pack('!HHHHHH', ident, reply_flags, 1, len(wanted), 0, 0) + question + answers


class _Udp(socketserver.ThreadingMixIn, socketserver.UDPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Tcp(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


class DnsServer(object):
    """Zone served on ADDRESS port 53 (UDP and TCP) until close()."""

    def __init__(self, address, zone=None, port=53):
        self.address = address
        self.zone = zone or Zone()
        zone_ = self.zone

        class UdpHandler(socketserver.BaseRequestHandler):
            def handle(self):
                data, sock = self.request
                reply = zone_.answer(data)
                if reply is not None:
                    sock.sendto(reply, self.client_address)

        class TcpHandler(socketserver.BaseRequestHandler):
            def handle(self):
                head = self.request.recv(2)
                if len(head) < 2:
                    return
                size = struct.unpack('!H', head)[0]
                data = b''
                while len(data) < size:
                    chunk = self.request.recv(size - len(data))
                    if not chunk:
                        return
                    data += chunk
                reply = zone_.answer(data)
                if reply is not None:
                    self.request.sendall(struct.pack('!H', len(reply)) + reply)

        self.servers = [_Udp((address, port), UdpHandler), _Tcp((address, port), TcpHandler)]
        for server in self.servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def close(self):
        for server in self.servers:
            server.shutdown()
            server.server_close()
