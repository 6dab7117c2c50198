/*
 * DataHub's password authenticator for PrestoDB: the local stack's PrestoDB (0.296) has no
 * file or LDAP authenticator of its own (presto-password-authenticators is not served to
 * us), so datahub.stack.presto compiles this one file into a plugin.
 *
 * etc/password-authenticator.properties:
 *   password-authenticator.name=datahub-password-file
 *   datahub.password-file=/path/to/passwords
 *
 * The password file has one "user:iterations:salt-hex:hash-hex" line per account, the hash
 * being PBKDF2WithHmacSHA256 of the password (256 bits). It is read once, at start.
 */
package io.datahub.presto;

import com.facebook.presto.spi.Plugin;
import com.facebook.presto.spi.security.AccessDeniedException;
import com.facebook.presto.spi.security.PasswordAuthenticator;
import com.facebook.presto.spi.security.PasswordAuthenticatorFactory;

import javax.crypto.SecretKeyFactory;
import javax.crypto.spec.PBEKeySpec;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.security.Principal;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

public final class DataHubPasswordPlugin
        implements Plugin
{
    public static final String NAME = "datahub-password-file";
    public static final String FILE_PROPERTY = "datahub.password-file";

    @Override
    public Iterable<PasswordAuthenticatorFactory> getPasswordAuthenticatorFactories()
    {
        return List.of(new Factory());
    }

    public static final class Factory
            implements PasswordAuthenticatorFactory
    {
        @Override
        public String getName()
        {
            return NAME;
        }

        @Override
        public PasswordAuthenticator create(Map<String, String> config)
        {
            String file = config.get(FILE_PROPERTY);
            if (file == null) {
                throw new IllegalArgumentException(FILE_PROPERTY + " is not set");
            }
            return new Authenticator(read(Path.of(file)));
        }
    }

    private record Entry(int iterations, byte[] salt, byte[] hash) {}

    private record User(String name)
            implements Principal
    {
        @Override
        public String getName()
        {
            return name;
        }
    }

    private static Map<String, Entry> read(Path file)
    {
        Map<String, Entry> entries = new HashMap<>();
        List<String> lines;
        try {
            lines = Files.readAllLines(file, StandardCharsets.UTF_8);
        }
        catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        HexFormat hex = HexFormat.of();
        for (String line : lines) {
            if (line.isBlank()) {
                continue;
            }
            String[] parts = line.split(":");
            if (parts.length != 4) {
                throw new IllegalArgumentException("Malformed line in " + file);
            }
            entries.put(parts[0], new Entry(Integer.parseInt(parts[1]), hex.parseHex(parts[2]), hex.parseHex(parts[3])));
        }
        return Map.copyOf(entries);
    }

    private static final class Authenticator
            implements PasswordAuthenticator
    {
        private final Map<String, Entry> entries;

        Authenticator(Map<String, Entry> entries)
        {
            this.entries = entries;
        }

        @Override
        public Principal createAuthenticatedPrincipal(String user, String password)
        {
            Entry entry = entries.get(user);
            if (entry == null || !MessageDigest.isEqual(entry.hash(), hash(password, entry))) {
                throw new AccessDeniedException("Invalid credentials");
            }
            return new User(user);
        }

        private static byte[] hash(String password, Entry entry)
        {
            try {
                PBEKeySpec spec = new PBEKeySpec(password.toCharArray(), entry.salt(), entry.iterations(), entry.hash().length * 8);
                return SecretKeyFactory.getInstance("PBKDF2WithHmacSHA256").generateSecret(spec).getEncoded();
            }
            catch (GeneralSecurityException e) {
                throw new IllegalStateException(e);
            }
        }
    }
}
