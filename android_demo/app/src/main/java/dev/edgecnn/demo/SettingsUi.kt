package dev.edgecnn.demo

import android.R as AndroidR
import android.view.View
import android.widget.AdapterView
import android.widget.ArrayAdapter
import android.widget.Spinner
import androidx.core.view.ViewCompat
import androidx.core.view.WindowInsetsCompat

/** Fills the threads (1-4) and delegate spinners and reports every change of either. */
fun bindSettings(threads: Spinner, delegate: Spinner, initial: RunSettings, onChange: (RunSettings) -> Unit) {
    val context = threads.context
    val threadChoices = (RunSettings.MIN_THREADS..RunSettings.MAX_THREADS).toList()
    val delegateChoices = Delegate.entries.toList()
    threads.adapter = ArrayAdapter(context, AndroidR.layout.simple_spinner_dropdown_item, threadChoices)
    delegate.adapter = ArrayAdapter(context, AndroidR.layout.simple_spinner_dropdown_item,
        delegateChoices.map { it.label })
    threads.setSelection(threadChoices.indexOf(initial.threads).coerceAtLeast(0))
    delegate.setSelection(delegateChoices.indexOf(initial.delegate).coerceAtLeast(0))
    var current = initial
    val listener = object : AdapterView.OnItemSelectedListener {
        override fun onItemSelected(parent: AdapterView<*>?, view: View?, position: Int, id: Long) {
            val chosen = RunSettings(
                threadChoices[threads.selectedItemPosition.coerceAtLeast(0)],
                delegateChoices[delegate.selectedItemPosition.coerceAtLeast(0)],
            )
            if (chosen != current) {
                current = chosen
                onChange(chosen)
            }
        }

        override fun onNothingSelected(parent: AdapterView<*>?) = Unit
    }
    threads.onItemSelectedListener = listener
    delegate.onItemSelectedListener = listener
}

/** Keeps the view's content clear of the status and navigation bars (apps targeting
 * Android 15 are drawn edge to edge). */
fun View.padForSystemBars(top: Boolean = true) {
    val padLeft = paddingLeft
    val padTop = paddingTop
    val padRight = paddingRight
    val padBottom = paddingBottom
    ViewCompat.setOnApplyWindowInsetsListener(this) { view, insets ->
        val bars = insets.getInsets(WindowInsetsCompat.Type.systemBars())
        view.setPadding(
            padLeft + bars.left,
            padTop + (if (top) bars.top else 0),
            padRight + bars.right,
            padBottom + bars.bottom,
        )
        insets
    }
}
