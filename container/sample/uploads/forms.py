from django import forms
from django.conf import settings

from .models import Upload


class UploadForm(forms.ModelForm):
    class Meta:
        model = Upload
        fields = ["title", "file"]

    def clean_file(self):
        f = self.cleaned_data["file"]
        if f.size > settings.MAX_UPLOAD_SIZE:
            raise forms.ValidationError("File too large.")
        return f
