// Writes the bundled sample dataset (data/medical-calculations). Self-contained; run from the repository root:
//   dotnet run scripts/generate-sample-data.cs [output-folder]
// The tests compile this file too (SHARPTUNE_TESTS): SampleDataTests fails when data/medical-calculations differs
// from what the generator writes.
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;

#if !SHARPTUNE_TESTS
string folder = Path.GetFullPath(args.Length > 0 ? args[0] : "data/medical-calculations");
SharpTune.Scripts.SampleDataGenerator.WriteFiles(folder);
Console.WriteLine($"wrote {folder}");
#endif

namespace SharpTune.Scripts
{
    /// <summary>A row in the medical-o1-reasoning-SFT schema.</summary>
    internal sealed record MedicalRow(string Question, string Complex_CoT, string Response);

    /// <summary>
    /// Writes the bundled sample dataset: clinical arithmetic (weight-based doses, BMI, infusion and drip rates,
    /// unit conversions) that a tiny model can learn, in the medical-o1-reasoning-SFT schema. Each reasoning lists
    /// its steps with the numbers and each response states the answer in one sentence. Deterministic: the same seed
    /// gives the same rows on every machine. The numbers are arithmetic practice, not clinical guidance.
    /// </summary>
    internal static class SampleDataGenerator
    {
        public const ulong DefaultSeed = 20250101;
        public const int TrainRows = 400;
        public const int TestRows = 40;

        private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

        /// <summary>Train and test rows; no question appears twice or in both splits.</summary>
        public static (List<MedicalRow> Train, List<MedicalRow> Test) MedicalCalculations(ulong seed = DefaultSeed)
        {
            var random = new Xoshiro256(seed);
            var tasks = new Func<Xoshiro256, MedicalRow>[]
            {
                WeightDose, DividedDailyDose, Bmi, InfusionRate, ContinuousInfusion, PoundsToKilograms,
                FahrenheitToCelsius, MassConversion, DripRate, Tablets, OralLiquid,
            };
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var rows = new List<MedicalRow>();
            for (int i = 0; rows.Count < TrainRows + TestRows; i++)
            {
                var row = tasks[i % tasks.Length](random);
                if (seen.Add(row.Question))
                    rows.Add(row);
            }
            return (rows[..TrainRows], rows[TrainRows..]);
        }

        /// <summary>The rows as the JSON array the sample files hold (readable non-ASCII such as × and °).</summary>
        public static string ToJson(IReadOnlyList<MedicalRow> rows)
        {
            var buffer = new System.Buffers.ArrayBufferWriter<byte>();
            using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
            {
                writer.WriteStartArray();
                foreach (var row in rows)
                {
                    writer.WriteStartObject();
                    writer.WriteString("Question", row.Question);
                    writer.WriteString("Complex_CoT", row.Complex_CoT);
                    writer.WriteString("Response", row.Response);
                    writer.WriteEndObject();
                }
                writer.WriteEndArray();
            }
            return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan).ReplaceLineEndings("\n") + "\n";
        }

        /// <summary>Writes train.json and test.json into <paramref name="folder"/> (atomically each).</summary>
        public static void WriteFiles(string folder, ulong seed = DefaultSeed)
        {
            var (train, test) = MedicalCalculations(seed);
            Directory.CreateDirectory(folder);
            WriteAtomically(Path.Combine(folder, "train.json"), ToJson(train));
            WriteAtomically(Path.Combine(folder, "test.json"), ToJson(test));
        }

        private static void WriteAtomically(string path, string text)
        {
            string tmp = $"{path}.tmp-{Guid.NewGuid():N}";
            File.WriteAllText(tmp, text);
            File.Move(tmp, path, overwrite: true);
        }

        private static readonly (string Name, int MgPerKg)[] WeightDrugs =
        [
            ("amoxicillin", 25), ("paracetamol", 15), ("ibuprofen", 10), ("ceftriaxone", 50),
            ("gentamicin", 5), ("vancomycin", 15), ("azithromycin", 10), ("acyclovir", 10),
        ];

        private static MedicalRow WeightDose(Xoshiro256 r)
        {
            var (drug, perKg) = Pick(r, WeightDrugs);
            int weight = r.NextInt(2) == 0 ? 6 + r.NextInt(35) : 45 + r.NextInt(56);
            int dose = weight * perKg;
            string question = Pick(r,
                $"A patient weighing {weight} kg is prescribed {drug} at {perKg} mg/kg. What dose should be given?",
                $"Calculate the dose of {drug} for a {weight} kg patient if the ordered dose is {perKg} mg/kg.",
                $"{Capitalize(drug)} is ordered at {perKg} mg/kg for a patient who weighs {weight} kg. How many milligrams is that?");
            string reasoning = $"The dose is the weight times the dose per kilogram.\nWeight {weight} kg × {perKg} mg/kg = {dose} mg.";
            string answer = Pick(r, $"The dose is {dose} mg of {drug}.", $"Give {dose} mg of {drug}.");
            return new MedicalRow(question, reasoning, answer);
        }

        private static MedicalRow DividedDailyDose(Xoshiro256 r)
        {
            var (drug, perKgDay) = Pick(r, [("amoxicillin", 90), ("cefalexin", 50), ("ibuprofen", 30), ("clarithromycin", 15), ("paracetamol", 60)]);
            int doses = Pick(r, [2, 3, 4]);
            int weight = 6 + r.NextInt(35);
            int daily = weight * perKgDay;
            string each = Num(Round(daily / (double)doses, 1));
            string question = Pick(r,
                $"A child weighing {weight} kg needs {drug} {perKgDay} mg/kg/day divided into {doses} doses. How much is each dose?",
                $"{Capitalize(drug)} is prescribed at {perKgDay} mg/kg/day in {doses} divided doses for a {weight} kg child. What is the single dose?");
            string reasoning =
                $"First find the daily dose: {weight} kg × {perKgDay} mg/kg/day = {daily} mg/day.\n" +
                $"Then split it into {doses} doses: {daily} mg ÷ {doses} = {each} mg.";
            string answer = $"Each dose is {each} mg, given {doses} times a day.";
            return new MedicalRow(question, reasoning, answer);
        }

        private static MedicalRow Bmi(Xoshiro256 r)
        {
            int weight = 42 + r.NextInt(79);
            int heightCm = 148 + r.NextInt(48);
            double metres = heightCm / 100.0;
            double squared = Round(metres * metres, 2);
            double bmi = Round(weight / squared, 1);
            string category = bmi < 18.5 ? "underweight" : bmi < 25 ? "normal weight" : bmi < 30 ? "overweight" : "obese";
            string question = Pick(r,
                $"What is the BMI of a patient who weighs {weight} kg and is {heightCm} cm tall?",
                $"A patient is {heightCm} cm tall and weighs {weight} kg. Calculate the body mass index.");
            string reasoning =
                $"Height in metres: {heightCm} cm = {Num(metres)} m.\n" +
                $"Height squared: {Num(metres)} m × {Num(metres)} m = {Num(squared)} m².\n" +
                $"BMI = weight ÷ height squared: {weight} kg ÷ {Num(squared)} m² = {Num(bmi)} kg/m².\n" +
                $"A BMI of {Num(bmi)} is in the {category} range.";
            string answer = $"The BMI is {Num(bmi)} kg/m², which is {category}.";
            return new MedicalRow(question, reasoning, answer);
        }

        private static MedicalRow InfusionRate(Xoshiro256 r)
        {
            var (drug, dose, concentration) = Pick(r,
            [
                ("vancomycin", 1000, 5), ("vancomycin", 1500, 5), ("ceftriaxone", 2000, 40), ("magnesium sulfate", 2000, 40),
                ("metronidazole", 500, 5), ("acyclovir", 700, 5), ("paracetamol", 1000, 10), ("levetiracetam", 1000, 10),
            ]);
            int minutes = Pick(r, [30, 60, 90, 120, 240]);
            double volume = dose / (double)concentration;
            double hours = minutes / 60.0;
            double rate = Round(volume / hours, 1);
            string question = Pick(r,
                $"{Capitalize(drug)} {dose} mg is diluted to {concentration} mg/mL and must run over {minutes} minutes. What is the pump rate in mL/h?",
                $"Infuse {dose} mg of {drug} at a concentration of {concentration} mg/mL over {minutes} minutes. At how many mL/h should the pump be set?");
            string reasoning =
                $"Volume = dose ÷ concentration: {dose} mg ÷ {concentration} mg/mL = {Num(volume)} mL.\n" +
                $"Time in hours: {minutes} min ÷ 60 = {Num(hours)} h.\n" +
                $"Rate = volume ÷ time: {Num(volume)} mL ÷ {Num(hours)} h = {Num(rate)} mL/h.";
            string answer = $"Set the pump to {Num(rate)} mL/h.";
            return new MedicalRow(question, reasoning, answer);
        }

        private static MedicalRow ContinuousInfusion(Xoshiro256 r)
        {
            var (drug, concentration) = Pick(r, [("dopamine", 1600), ("dobutamine", 1000), ("dopamine", 3200), ("dobutamine", 2000)]);
            int perKgMin = Pick(r, [2, 3, 5, 7, 10, 15]);
            int weight = 50 + r.NextInt(51);
            int perMinute = weight * perKgMin;
            int perHour = perMinute * 60;
            double rate = Round(perHour / (double)concentration, 1);
            string question = Pick(r,
                $"Start {drug} at {perKgMin} mcg/kg/min for a {weight} kg patient. The bag holds {concentration} mcg/mL. What is the rate in mL/h?",
                $"A {weight} kg patient needs {drug} {perKgMin} mcg/kg/min from a {concentration} mcg/mL solution. Calculate the infusion rate in mL/h.");
            string reasoning =
                $"Dose per minute: {weight} kg × {perKgMin} mcg/kg/min = {perMinute} mcg/min.\n" +
                $"Dose per hour: {perMinute} mcg/min × 60 = {perHour} mcg/h.\n" +
                $"Rate: {perHour} mcg/h ÷ {concentration} mcg/mL = {Num(rate)} mL/h.";
            string answer = $"The infusion rate is {Num(rate)} mL/h.";
            return new MedicalRow(question, reasoning, answer);
        }

        private static MedicalRow PoundsToKilograms(Xoshiro256 r)
        {
            int pounds = 15 + r.NextInt(286);
            double kg = Round(pounds / 2.2, 1);
            string question = Pick(r,
                $"A patient weighs {pounds} lb. What is the weight in kilograms?",
                $"Convert {pounds} lb to kg.",
                $"How many kilograms is a body weight of {pounds} pounds?");
            string reasoning = $"There are 2.2 lb in 1 kg.\n{pounds} lb ÷ 2.2 = {Num(kg)} kg.";
            string answer = Pick(r, $"{pounds} lb is {Num(kg)} kg.", $"The patient weighs {Num(kg)} kg.");
            return new MedicalRow(question, reasoning, answer);
        }

        private static MedicalRow FahrenheitToCelsius(Xoshiro256 r)
        {
            double fahrenheit = (950 + r.NextInt(116)) / 10.0; // 95.0 to 106.5 °F
            double difference = Round(fahrenheit - 32, 1);
            double celsius = Round(difference * 5 / 9, 1);
            string meaning = celsius >= 38 ? "which is a fever" : celsius < 35 ? "which is hypothermia" : "which is not a fever";
            string question = Pick(r,
                $"A temperature of {Num(fahrenheit)} °F is recorded. What is it in °C?",
                $"Convert {Num(fahrenheit)} °F to degrees Celsius.");
            string reasoning =
                $"Subtract 32: {Num(fahrenheit)} - 32 = {Num(difference)}.\n" +
                $"Multiply by 5/9: {Num(difference)} × 5 ÷ 9 = {Num(celsius)} °C.";
            string answer = $"{Num(fahrenheit)} °F is {Num(celsius)} °C, {meaning}.";
            return new MedicalRow(question, reasoning, answer);
        }

        private static MedicalRow MassConversion(Xoshiro256 r)
        {
            switch (r.NextInt(3))
            {
                case 0:
                {
                    int mg = 25 * (2 + r.NextInt(199));
                    string g = Num(mg / 1000.0);
                    return new MedicalRow(
                        Pick(r, $"Convert {mg} mg to grams.", $"How many grams are in {mg} mg?"),
                        $"1 g = 1000 mg.\n{mg} mg ÷ 1000 = {g} g.",
                        $"{mg} mg is {g} g.");
                }
                case 1:
                {
                    double g = (1 + r.NextInt(50)) / 10.0;
                    string mg = Num(g * 1000);
                    return new MedicalRow(
                        Pick(r, $"Convert {Num(g)} g to milligrams.", $"How many milligrams are in {Num(g)} g?"),
                        $"1 g = 1000 mg.\n{Num(g)} g × 1000 = {mg} mg.",
                        $"{Num(g)} g is {mg} mg.");
                }
                default:
                {
                    int mcg = 25 * (1 + r.NextInt(100));
                    string mg = Num(mcg / 1000.0);
                    return new MedicalRow(
                        Pick(r, $"Convert {mcg} mcg to milligrams.", $"How many milligrams are in {mcg} micrograms?"),
                        $"1 mg = 1000 mcg.\n{mcg} mcg ÷ 1000 = {mg} mg.",
                        $"{mcg} mcg is {mg} mg.");
                }
            }
        }

        private static MedicalRow DripRate(Xoshiro256 r)
        {
            int volume = Pick(r, [100, 250, 500, 1000]);
            int hours = Pick(r, [1, 2, 4, 6, 8, 12]);
            int dropFactor = Pick(r, [10, 15, 20, 60]);
            int minutes = hours * 60;
            int drops = volume * dropFactor;
            double exact = Round(drops / (double)minutes, 1);
            int rounded = (int)Math.Round(drops / (double)minutes, MidpointRounding.AwayFromZero);
            string question = Pick(r,
                $"Infuse {volume} mL over {hours} h with a giving set of {dropFactor} drops/mL. How many drops per minute?",
                $"{volume} mL of saline must run over {hours} hours using a {dropFactor} gtt/mL set. What is the drip rate in gtt/min?");
            string reasoning =
                $"Time in minutes: {hours} h × 60 = {minutes} min.\n" +
                $"Total drops: {volume} mL × {dropFactor} gtt/mL = {drops} gtt.\n" +
                $"Drops per minute: {drops} gtt ÷ {minutes} min = {Num(exact)}, about {rounded} gtt/min.";
            string answer = $"Run the infusion at {rounded} drops per minute.";
            return new MedicalRow(question, reasoning, answer);
        }

        private static MedicalRow Tablets(Xoshiro256 r)
        {
            var (drug, strength) = Pick(r,
            [
                ("metformin", 500), ("amlodipine", 5), ("atenolol", 25), ("furosemide", 40), ("prednisolone", 5),
                ("paracetamol", 500), ("warfarin", 1), ("metoprolol", 50),
            ]);
            double count = Pick(r, [0.5, 1, 1.5, 2, 3, 4]);
            double ordered = strength * count;
            string tablets = count == 1 ? "1 tablet" : $"{Num(count)} tablets";
            string question = Pick(r,
                $"{Capitalize(drug)} {Num(ordered)} mg is ordered. Tablets contain {strength} mg. How many tablets should be given?",
                $"The order is {drug} {Num(ordered)} mg and the stock tablets are {strength} mg each. How many tablets?");
            string reasoning = $"Tablets = ordered dose ÷ tablet strength.\n{Num(ordered)} mg ÷ {strength} mg = {Num(count)}.";
            string answer = $"Give {tablets} of {drug}.";
            return new MedicalRow(question, reasoning, answer);
        }

        private static MedicalRow OralLiquid(Xoshiro256 r)
        {
            var (drug, stock) = Pick(r, [("amoxicillin", 250), ("paracetamol", 120), ("ibuprofen", 100), ("cefalexin", 125), ("amoxicillin", 125)]);
            int ordered = stock / 5 * (2 + r.NextInt(14));
            double volume = Round(ordered / (double)stock * 5, 1);
            string question = Pick(r,
                $"The order is {drug} {ordered} mg. The suspension contains {stock} mg per 5 mL. How many mL should be given?",
                $"{Capitalize(drug)} suspension is {stock} mg/5 mL. What volume gives a dose of {ordered} mg?");
            string reasoning = $"Volume = ordered dose ÷ stock strength × stock volume.\n{ordered} mg ÷ {stock} mg × 5 mL = {Num(volume)} mL.";
            string answer = $"Give {Num(volume)} mL of the {drug} suspension.";
            return new MedicalRow(question, reasoning, answer);
        }

        /// <summary>Rounds half away from zero, as people do on paper (Math.Round's default rounds half to even).</summary>
        private static double Round(double value, int decimals) => Math.Round(value, decimals, MidpointRounding.AwayFromZero);

        private static string Num(double value) => value.ToString("0.##", Inv);

        private static string Capitalize(string text) => char.ToUpperInvariant(text[0]) + text[1..];

        private static T Pick<T>(Xoshiro256 r, params T[] options) => options[r.NextInt(options.Length)];
    }

    /// <summary>xoshiro256** seeded by SplitMix64 (the same generator as SharpTune.Data.SeededRandom), so that the
    /// seed gives the same rows on every .NET version and machine.</summary>
    internal sealed class Xoshiro256
    {
        private ulong _s0, _s1, _s2, _s3;

        public Xoshiro256(ulong seed)
        {
            ulong x = seed;
            _s0 = SplitMix64(ref x);
            _s1 = SplitMix64(ref x);
            _s2 = SplitMix64(ref x);
            _s3 = SplitMix64(ref x);
        }

        public ulong NextUInt64()
        {
            ulong result = RotateLeft(_s1 * 5, 7) * 9;
            ulong t = _s1 << 17;
            _s2 ^= _s0;
            _s3 ^= _s1;
            _s1 ^= _s2;
            _s0 ^= _s3;
            _s2 ^= t;
            _s3 = RotateLeft(_s3, 45);
            return result;
        }

        /// <summary>Uniform integer in [0, bound), without modulo bias (Lemire's multiply-and-reject).</summary>
        public long NextInt64(long bound)
        {
            if (bound <= 0)
                throw new ArgumentOutOfRangeException(nameof(bound), bound, "bound must be positive");
            ulong range = (ulong)bound;
            ulong high = Math.BigMul(NextUInt64(), range, out ulong low);
            if (low < range)
            {
                ulong threshold = (0 - range) % range;
                while (low < threshold)
                    high = Math.BigMul(NextUInt64(), range, out low);
            }
            return (long)high;
        }

        public int NextInt(int bound) => (int)NextInt64(bound);

        /// <summary>Fisher–Yates shuffle in place.</summary>

        private static ulong SplitMix64(ref ulong state)
        {
            state += 0x9E3779B97F4A7C15UL;
            return Mix(state);
        }

        private static ulong Mix(ulong z)
        {
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }

        private static ulong RotateLeft(ulong x, int k) => (x << k) | (x >> (64 - k));
    }
}
