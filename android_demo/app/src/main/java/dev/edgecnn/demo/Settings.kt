package dev.edgecnn.demo

import android.content.Context

/** How the interpreter runs: CPU = LiteRT's built-in kernels, XNNPACK = its default CPU
 * delegate (what `edgecnn bench` uses unless --no-xnnpack), GPU = the GPU delegate.
 * [jsonName] is the `delegate` value `edgecnn bench --adb` writes for the same choice. */
enum class Delegate(val label: String, val jsonName: String) {
    CPU("CPU", "cpu"),
    XNNPACK("XNNPACK", "xnnpack"),
    GPU("GPU", "gpu");

    companion object {
        fun fromName(name: String?): Delegate = entries.firstOrNull { it.name == name } ?: XNNPACK
    }
}

data class RunSettings(val threads: Int = 4, val delegate: Delegate = Delegate.XNNPACK) {
    val xnnpack: Boolean get() = delegate == Delegate.XNNPACK

    override fun toString(): String = "${delegate.label}, $threads thread${if (threads == 1) "" else "s"}"

    companion object {
        const val MIN_THREADS = 1
        const val MAX_THREADS = 4
        private const val PREFS = "edgecnn_settings"
        private const val KEY_THREADS = "threads"
        private const val KEY_DELEGATE = "delegate"

        fun load(context: Context): RunSettings {
            val prefs = context.getSharedPreferences(PREFS, Context.MODE_PRIVATE)
            val threads = prefs.getInt(KEY_THREADS, 4).coerceIn(MIN_THREADS, MAX_THREADS)
            return RunSettings(threads, Delegate.fromName(prefs.getString(KEY_DELEGATE, null)))
        }

        fun save(context: Context, settings: RunSettings) {
            context.getSharedPreferences(PREFS, Context.MODE_PRIVATE).edit()
                .putInt(KEY_THREADS, settings.threads)
                .putString(KEY_DELEGATE, settings.delegate.name)
                .apply()
        }
    }
}
