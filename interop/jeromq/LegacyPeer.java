// A ZMTP 2.0 peer for the interop tests: one JeroMQ 0.3.6 socket, driven line by line.
//
// Usage: java -cp jeromq.jar:DIR LegacyPeer TYPE bind|connect ENDPOINT [IDENTITY_HEX]
// Prints "ready" once bound or connecting, then reads commands on stdin, one per line,
// frames as comma-separated hex ("-" is an empty frame):
//   send F1,F2,...   send one multipart message; prints "sent"
//   recv             prints "msg F1,F2,..." or "timeout" (after 10 s)
//   sub HEX | unsub HEX   (SUB sockets) prints "ok"
//   quit             closes everything and exits 0
import org.zeromq.ZMQ;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.util.ArrayList;
import java.util.List;

public class LegacyPeer {
    static byte[] unhex(String s) {
        if (s.equals("-")) return new byte[0];
        byte[] out = new byte[s.length() / 2];
        for (int i = 0; i < out.length; i++)
            out[i] = (byte) Integer.parseInt(s.substring(2 * i, 2 * i + 2), 16);
        return out;
    }

    static String hex(byte[] b) {
        if (b.length == 0) return "-";
        StringBuilder sb = new StringBuilder();
        for (byte x : b) sb.append(String.format("%02x", x & 0xff));
        return sb.toString();
    }

    static int type(String name) {
        switch (name) {
            case "PAIR": return ZMQ.PAIR;
            case "PUB": return ZMQ.PUB;
            case "SUB": return ZMQ.SUB;
            case "REQ": return ZMQ.REQ;
            case "REP": return ZMQ.REP;
            case "DEALER": return ZMQ.DEALER;
            case "ROUTER": return ZMQ.ROUTER;
            case "PULL": return ZMQ.PULL;
            case "PUSH": return ZMQ.PUSH;
            case "XPUB": return ZMQ.XPUB;
            case "XSUB": return ZMQ.XSUB;
            default: throw new IllegalArgumentException("unknown socket type " + name);
        }
    }

    public static void main(String[] args) throws Exception {
        ZMQ.Context ctx = ZMQ.context(1);
        ZMQ.Socket sock = ctx.socket(type(args[0]));
        sock.setLinger(1000);
        sock.setReceiveTimeOut(10000);
        if (args.length > 3) sock.setIdentity(unhex(args[3]));
        if (args[1].equals("bind")) sock.bind(args[2]); else sock.connect(args[2]);
        System.out.println("ready");
        System.out.flush();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        String line;
        while ((line = in.readLine()) != null) {
            String[] parts = line.trim().split(" ", 2);
            String cmd = parts[0];
            if (cmd.equals("quit")) break;
            if (cmd.equals("send")) {
                String[] frames = parts[1].split(",");
                for (int i = 0; i < frames.length; i++)
                    sock.send(unhex(frames[i]), i < frames.length - 1 ? ZMQ.SNDMORE : 0);
                System.out.println("sent");
            } else if (cmd.equals("recv")) {
                byte[] first = sock.recv(0);
                if (first == null) {
                    System.out.println("timeout");
                } else {
                    List<String> frames = new ArrayList<>();
                    frames.add(hex(first));
                    while (sock.hasReceiveMore()) frames.add(hex(sock.recv(0)));
                    System.out.println("msg " + String.join(",", frames));
                }
            } else if (cmd.equals("sub")) {
                sock.subscribe(unhex(parts.length > 1 ? parts[1] : "-"));
                System.out.println("ok");
            } else if (cmd.equals("unsub")) {
                sock.unsubscribe(unhex(parts.length > 1 ? parts[1] : "-"));
                System.out.println("ok");
            } else {
                System.out.println("error unknown command " + cmd);
            }
            System.out.flush();
        }
        sock.close();
        ctx.term();
    }
}
