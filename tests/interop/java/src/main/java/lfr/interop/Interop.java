package lfr.interop;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;

import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.Encoder;
import org.apache.avro.io.EncoderFactory;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.BinaryMessageEncoder;

/**
 * The Java side of the Avro interop test.
 *
 * <p>Arguments come in groups of four: SCHEMA.avsc IN.bin OUT.json OUT.bin. For each group it
 * decodes IN.bin (single-object encoding written by Python) with BinaryMessageDecoder, writes
 * the record in Avro's JSON encoding to OUT.json, appends "-from-java" to the record's first
 * string field (so the Python side can tell Java really re-encoded it), and writes it with
 * BinaryMessageEncoder to OUT.bin. It prints the schema's CRC-64-AVRO fingerprint, one line per
 * group, so the test can compare it with the Python codec's.
 */
public final class Interop {
  private Interop() {}

  public static void main(String[] args) throws Exception {
    if (args.length == 0 || args.length % 4 != 0) {
      System.err.println("usage: Interop (SCHEMA.avsc IN.bin OUT.json OUT.bin)...");
      System.exit(2);
    }
    for (int i = 0; i < args.length; i += 4) {
      Schema schema = new Schema.Parser().parse(new File(args[i]));
      byte[] input = Files.readAllBytes(Path.of(args[i + 1]));

      BinaryMessageDecoder<GenericRecord> decoder =
          new BinaryMessageDecoder<>(GenericData.get(), schema);
      GenericRecord record = decoder.decode(input);

      ByteArrayOutputStream json = new ByteArrayOutputStream();
      Encoder jsonEncoder = EncoderFactory.get().jsonEncoder(schema, json);
      new GenericDatumWriter<GenericRecord>(schema).write(record, jsonEncoder);
      jsonEncoder.flush();
      Files.write(Path.of(args[i + 2]), json.toByteArray());

      String firstField = schema.getFields().get(0).name();
      record.put(firstField, record.get(firstField).toString() + "-from-java");
      BinaryMessageEncoder<GenericRecord> encoder =
          new BinaryMessageEncoder<>(GenericData.get(), schema);
      try (OutputStream out = Files.newOutputStream(Path.of(args[i + 3]))) {
        encoder.encode(record, out);
      }
      System.out.println(
          schema.getFullName() + " " + Long.toUnsignedString(SchemaNormalization.parsingFingerprint64(schema)));
    }
  }
}
