# SPDX-License-Identifier: GPL-3.0-or-later
"""Loopback SMTP peers that offer STARTTLS with a self-signed certificate.

One PeerPool serves any number of (address, port) listeners from threads of
the calling process.  Every listener accepts mail for any recipient and
records each session (listener, TLS version, cipher, SNI, recipients), so a
test can see what the Postfix client did on the wire.  Only loopback
addresses (127.0.0.0/8, ::1) are ever bound.
"""

import ipaddress
import os
import socket
import socketserver
import ssl
import subprocess
import threading


def is_loopback(address):
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def make_certificate(directory, name='oracle-peer.test'):
    """A self-signed certificate and key (openssl); returns (cert, key)."""
    cert = os.path.join(directory, 'peer.crt')
    key = os.path.join(directory, 'peer.key')
    if not os.path.exists(cert):
        subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
                        '-nodes', '-keyout', key, '-out', cert, '-days', '30', '-subj', '/CN=%s' % name,
                        '-addext', 'subjectAltName=DNS:%s' % name],
                       check=True, capture_output=True)
    return cert, key


def certificate_digest(cert, algorithm='sha256'):
    """The certificate fingerprint as Postfix prints it (AA:BB:...)."""
    with open(cert) as handle:
        der = ssl.PEM_cert_to_DER_cert(handle.read())
    import hashlib
    digest = hashlib.new(algorithm, der).hexdigest().upper()
    return ':'.join(digest[i:i + 2] for i in range(0, len(digest), 2))


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, pool, address, port):
        self.pool = pool
        self.address_family = socket.AF_INET6 if ':' in address else socket.AF_INET
        socketserver.TCPServer.__init__(self, (address, port), _Handler)


class _Handler(socketserver.StreamRequestHandler):
    timeout = 30

    def finish(self):
        try:
            socketserver.StreamRequestHandler.finish(self)
        except (OSError, ssl.SSLError):
            pass

    def reply(self, text):
        self.wfile.write((text + '\r\n').encode('ascii'))
        self.wfile.flush()

    def handle(self):
        pool = self.server.pool
        local = self.request.getsockname()
        session = {'listener': '%s:%d' % (local[0], local[1]), 'tls': None, 'cipher': None,
                   'sni': None, 'rcpt': [], 'delivered': 0}
        sni = {}
        tls_active = False
        if pool.implicit_tls:
            # SMTPS (port 465 style): TLS from the first byte, no STARTTLS
            try:
                conn = pool.tls_context(sni).wrap_socket(self.request, server_side=True)
            except (OSError, ssl.SSLError) as exc:
                session['tls'] = 'handshake failed: %s' % exc
                pool.record(session)
                return
            self.request = self.connection = conn
            self.rfile = conn.makefile('rb')
            self.wfile = conn.makefile('wb')
            tls_active = True
            session.update(tls=conn.version(), cipher=conn.cipher()[0], sni=sni.get('name'))
        self.reply('220 oracle-peer.test ESMTP')
        rcpts = []
        try:
            while True:
                line = self.rfile.readline(4096)
                if not line:
                    break
                verb, _sep, arg = line.decode('ascii', 'replace').strip().partition(' ')
                verb = verb.upper()
                if verb in ('EHLO', 'HELO'):
                    if verb == 'HELO':
                        self.reply('250 oracle-peer.test')
                    else:
                        self.wfile.write(b'250-oracle-peer.test\r\n')
                        if not tls_active and pool.starttls:
                            self.wfile.write(b'250-STARTTLS\r\n')
                        self.wfile.write(b'250-SMTPUTF8\r\n')
                        self.reply('250 8BITMIME')
                elif verb == 'STARTTLS' and not pool.starttls:
                    self.reply('502 5.5.1 not offered')
                elif verb == 'STARTTLS' and not tls_active:
                    self.reply('220 2.0.0 ready to start TLS')
                    context = pool.tls_context(sni)
                    try:
                        conn = context.wrap_socket(self.request, server_side=True)
                    except (OSError, ssl.SSLError) as exc:
                        session['tls'] = 'handshake failed: %s' % exc
                        break
                    self.request = self.connection = conn
                    self.rfile = conn.makefile('rb')
                    self.wfile = conn.makefile('wb')
                    tls_active = True
                    session['tls'] = conn.version()
                    session['cipher'] = conn.cipher()[0]
                    session['sni'] = sni.get('name')
                elif verb == 'MAIL':
                    rcpts = []
                    self.reply('250 2.1.0 ok')
                elif verb == 'RCPT':
                    rcpts.append(arg.partition(':')[2].strip().strip('<>'))
                    self.reply('250 2.1.5 ok')
                elif verb == 'DATA':
                    self.reply('354 go ahead')
                    while True:
                        data = self.rfile.readline(65536)
                        if not data or data in (b'.\r\n', b'.\n'):
                            break
                    session['rcpt'].extend(rcpts)
                    session['delivered'] += 1
                    self.reply('250 2.0.0 ok: delivered')
                elif verb in ('RSET', 'NOOP'):
                    self.reply('250 2.0.0 ok')
                elif verb == 'QUIT':
                    self.reply('221 2.0.0 bye')
                    break
                else:
                    self.reply('502 5.5.2 command not recognized')
        except (OSError, ssl.SSLError) as exc:
            session.setdefault('error', str(exc))
        finally:
            pool.record(session)


class PeerPool(object):
    """Listeners on loopback (address, port) pairs, added on demand."""

    def __init__(self, cert, key, starttls=True, implicit_tls=False):
        """CERT and KEY for STARTTLS; STARTTLS=False: plaintext-only peers (no certificate);
        IMPLICIT_TLS: TLS from the first byte (SMTPS, what smtp_tls_wrappermode speaks)."""
        self.cert, self.key = cert, key
        self.starttls = starttls and not implicit_tls
        self.implicit_tls = implicit_tls
        self.servers = {}
        self.sessions = []
        self._lock = threading.Lock()

    def tls_context(self, sni_out):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        # accept every protocol and cipher the client may be limited to by a policy entry
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        try:
            context.set_ciphers('ALL:@SECLEVEL=0')
        except ssl.SSLError:
            pass

        def callback(sslobj, name, ctx):
            sni_out['name'] = name
        context.sni_callback = callback
        return context

    def listen(self, address, port):
        """Make sure something listens on address:port; raise OSError when it cannot."""
        if not is_loopback(address):
            raise ValueError('refusing to listen on %s: only loopback addresses are used' % address)
        key = (address, int(port))
        with self._lock:
            if key in self.servers:
                return
            server = _Server(self, address, int(port))
            thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.2},
                                      name='oracle-peer-%s-%s' % key, daemon=True)
            thread.start()
            self.servers[key] = server

    def record(self, session):
        with self._lock:
            self.sessions.append(session)

    def sessions_for(self, address, port):
        want = '%s:%d' % (address, int(port))
        with self._lock:
            return [s for s in self.sessions if s['listener'] == want]

    def close(self):
        with self._lock:
            servers, self.servers = list(self.servers.values()), {}
        # shutdown() waits for the serving loop to notice (up to poll_interval): all at once
        stoppers = [threading.Thread(target=server.shutdown, daemon=True) for server in servers]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join(5)
        for server in servers:
            server.server_close()
